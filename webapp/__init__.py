"""RoadMesh web application: the schema owner (models + migrations), API, map, admin."""
