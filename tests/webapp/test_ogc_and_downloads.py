"""OGC API - Features over features and coverage (read by GDAL's OAPIF driver, as QGIS
does), and the GeoPackage and GeoParquet downloads read back with geopandas."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from django.test import Client

from tests.webapp.people import device, feature, frames_along, person
from webapp.mapping.models import MapFeature


@pytest.fixture
def street(db: None) -> list[MapFeature]:
    frames_along(device(person("driver"), "dev-a"), 4)
    return [
        feature("stop", 60.1700, 24.9400),
        feature("speed_limit_50", 60.1710, 24.9410, MapFeature.Status.CONFIRMED),
        feature("fire_hydrant", 61.0, 25.0),
    ]


def test_the_landing_page_links_conformance_collections_and_the_schema(
    client: Client, street: Any
) -> None:
    body = client.get("/ogc/").json()
    rels = {link["rel"] for link in body["links"]}
    assert {"self", "conformance", "data", "service-desc"} <= rels
    conf = client.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    ids = [c["id"] for c in client.get("/ogc/collections").json()["collections"]]
    assert ids == ["features", "coverage"]


def test_items_filter_by_bbox_and_datetime_and_page_with_next_links(
    client: Client, street: list[MapFeature]
) -> None:
    base = "/ogc/collections/features/items"
    page = client.get(base, {"limit": "2"}).json()
    assert page["numberMatched"] == 3 and page["numberReturned"] == 2
    nxt = next(link for link in page["links"] if link["rel"] == "next")
    assert "offset=2" in nxt["href"]
    boxed = client.get(base, {"bbox": "24.9,60.1,25.0,60.2"}).json()
    assert [f["id"] for f in boxed["features"]] == [street[0].pk, street[1].pk]
    none = client.get(base, {"datetime": "2030-01-01T00:00:00Z/.."}).json()
    assert none["numberMatched"] == 0
    one = client.get(f"{base}/{street[1].pk}").json()
    assert one["properties"]["class"] == "speed_limit_50"
    assert client.get(f"{base}/999999").status_code == 404
    cells = client.get("/ogc/collections/coverage/items").json()
    assert cells["numberMatched"] >= 1
    cell = cells["features"][0]["id"]
    assert client.get(f"/ogc/collections/coverage/items/{cell}").status_code == 200


GDAL_READ = """
import json, sys, pyogrio
frame = pyogrio.read_dataframe("OAPIF:" + sys.argv[1] + "/ogc/", layer="features")
print(json.dumps({"classes": sorted(frame["class"]), "type": frame.geometry.iloc[0].geom_type}))
"""


def test_gdal_reads_the_features_collection_with_no_plugin(
    live_server: Any, street: list[MapFeature]
) -> None:
    # GDAL runs in its own process: its HTTP client holds the GIL the live server needs
    done = subprocess.run(
        [sys.executable, "-c", GDAL_READ, live_server.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"classes": ["fire_hydrant", "speed_limit_50", "stop"], "type": "Point"}


@pytest.mark.parametrize("fmt", ["gpkg", "parquet"])
def test_features_download_as_geopackage_and_geoparquet(
    client: Client, street: list[MapFeature], fmt: str, tmp_path: Path
) -> None:
    response = client.get(f"/downloads/features.{fmt}", {"state": "confirmed"})
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    path = tmp_path / f"f.{fmt}"
    path.write_bytes(response.content)
    frame = gpd.read_parquet(path) if fmt == "parquet" else gpd.read_file(path)
    assert list(frame["class"]) == ["speed_limit_50"] and list(frame["value"]) == [50]
    assert frame.crs.to_epsg() == 4326


def test_coverage_downloads_as_geoparquet(client: Client, street: Any) -> None:
    response = client.get("/downloads/coverage.parquet")
    frame = gpd.read_parquet(io.BytesIO(response.content))
    assert frame["frames"].sum() == 4
    assert set(frame.geometry.geom_type) == {"Polygon"}


def test_an_unknown_download_is_a_json_404(client: Client, db: None) -> None:
    assert client.get("/downloads/features.shp").json()["error"]
