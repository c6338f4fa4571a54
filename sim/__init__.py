"""The sample world and fleet simulator: ground truth for everything RoadMesh measures.

A real road network (OpenStreetMap), ground-truth map features placed the way they stand
in real streets, a pinhole camera renderer, a GNSS error model written as NMEA/GPX, honest
and adversarial drivers, and YOLO training sets. See docs/sim.md.
"""
