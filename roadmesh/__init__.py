"""RoadMesh command-line entry point (the `roadmesh` console script)."""
