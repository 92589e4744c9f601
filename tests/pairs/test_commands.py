"""import_outfits and export_labels: bad input named by row, all or nothing, reports, formats."""

from __future__ import annotations

import csv
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from curation.pairs.models import CandidatePair, Outfit, PairLabel

pytestmark = pytest.mark.django_db


def _write(tmp_path, text, name="outfits.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_creates_outfits_and_reimport_replaces_items(catalog, tmp_path):
    s = [p.sku for p in catalog]
    path = _write(tmp_path, f"outfit_id,sku\nO1,{s[0]}\nO1,{s[2]}\nO2,{s[1]}\nO2,{s[3]}\nO2,{s[5]}\n")
    out = StringIO()
    call_command("import_outfits", str(path), stdout=out, stderr=StringIO())
    assert "2 outfit(s) created" in out.getvalue()
    o2 = Outfit.objects.get(external_id="O2")
    assert o2.source == "import" and list(o2.items.values_list("product__sku", flat=True)) == [s[1], s[3], s[5]]
    path = _write(tmp_path, f"outfit_id,sku\nO2,{s[4]}\nO2,{s[6]}\n")
    call_command("import_outfits", str(path), stdout=StringIO(), stderr=StringIO())
    assert Outfit.objects.count() == 2
    assert list(Outfit.objects.get(external_id="O2").items.values_list("product__sku", flat=True)) == [s[4], s[6]]


def test_import_with_other_column_names_and_outfit_names(catalog, tmp_path):
    s = [p.sku for p in catalog]
    path = _write(tmp_path, f"look;article;title\nL1;{s[0]};Beach day\nL1;{s[2]};\n")
    call_command(
        "import_outfits", str(path), "--outfit-column", "look", "--sku-column", "article", "--name-column", "title",
        "--delimiter", ";", stdout=StringIO(), stderr=StringIO(),
    )
    assert Outfit.objects.get(external_id="L1").name == "Beach day"


def test_bad_rows_reject_the_whole_file_naming_each_row(catalog, tmp_path):
    s = [p.sku for p in catalog]
    path = _write(tmp_path, f"outfit_id,sku\nO1,{s[0]}\nO1,NOPE\nO1,{s[0]}\n,{s[1]}\nO2,{s[1]}\nO3,{s[2]}\nO3,{s[3]}\n")
    with pytest.raises(CommandError) as err:
        call_command("import_outfits", str(path), stdout=StringIO(), stderr=StringIO())
    msg = str(err.value)
    assert "nothing imported" in msg
    assert "outfits.csv: row 3: unknown sku 'NOPE'" in msg
    assert f"row 4: sku '{s[0]}' appears twice in outfit 'O1'" in msg
    assert "row 5: outfit_id is empty" in msg
    assert "row 6: outfit 'O2' has 1 valid item(s)" in msg
    assert "row 2: outfit 'O1' has 1 valid item(s)" in msg
    assert not Outfit.objects.exists()


def test_skip_bad_rows_imports_the_rest_and_writes_a_report(catalog, tmp_path):
    s = [p.sku for p in catalog]
    path = _write(tmp_path, f"outfit_id,sku\nO1,{s[0]}\nO1,{s[2]}\nO2,NOPE\nO2,{s[1]}\n")
    report = tmp_path / "bad.csv"
    out = StringIO()
    call_command("import_outfits", str(path), "--skip-bad-rows", "--report", str(report), stdout=out, stderr=StringIO())
    assert list(Outfit.objects.values_list("external_id", flat=True)) == ["O1"]
    rows = list(csv.DictReader(report.open()))
    assert [(r["row"], r["error"]) for r in rows] == [("4", "unknown sku 'NOPE'"), ("5", "outfit 'O2' has 1 valid item(s) (row 5); an outfit needs at least 2")]
    assert "2 bad row(s) skipped" in out.getvalue()


@pytest.mark.parametrize(
    "text, message",
    [
        ("outfit,sku\nO1,X\n", "missing column(s) outfit_id"),
        ("outfit_id,sku\nO1,X,extra\n", "row 2: 1 cell(s) more than the header has"),
    ],
)
def test_structural_problems_are_named(catalog, tmp_path, text, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("import_outfits", str(_write(tmp_path, text)), stdout=StringIO(), stderr=StringIO())


def test_missing_or_binary_file(tmp_path, db):
    with pytest.raises(CommandError, match="nope.csv: no such file"):
        call_command("import_outfits", str(tmp_path / "nope.csv"), stdout=StringIO(), stderr=StringIO())
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CommandError, match="bin.csv: not UTF-8"):
        call_command("import_outfits", str(path), stdout=StringIO(), stderr=StringIO())


def test_export_labels_csv_and_jsonl(catalog, make_user, tmp_path):
    alice = make_user("stylist", "alice")
    a, b = sorted((catalog[0].pk, catalog[2].pk))
    pair = CandidatePair.objects.create(a_id=a, b_id=b, source="similar", state="decided")
    PairLabel.objects.create(pair=pair, user=alice, kind="stylist", value="yes", reasons=["style"], note='says "yes",\nreally')
    out = tmp_path / "labels.csv"
    err = StringIO()
    call_command("export_labels", "--output", str(out), stderr=err)
    rows = list(csv.DictReader(out.open(newline="")))
    assert [(r["user"], r["value"], r["kind"], r["reasons"], r["note"], r["pair_source"]) for r in rows] == [
        ("alice", "yes", "stylist", "style", 'says "yes",\nreally', "similar")
    ]
    assert "Wrote 1 labels row(s)" in err.getvalue()
    out = tmp_path / "labels.jsonl"
    call_command("export_labels", "--output", str(out), stderr=StringIO())
    line = json.loads(out.read_text().strip())
    assert line["reasons"] == ["style"] and line["user"] == "alice" and line["labeled_at"]
    assert not list(tmp_path.glob("*.part"))


def test_export_outfits_to_stdout(catalog, make_user):
    from curation.pairs import services

    services.outfit_create(user=make_user("stylist", "alice"), name="Look", product_ids=[catalog[0].pk, catalog[2].pk])
    out = StringIO()
    call_command("export_labels", "--kind", "outfits", "--format", "jsonl", stdout=out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["name"], x["position"], x["created_by"]) for x in lines] == [("Look", 0, "alice"), ("Look", 1, "alice")]
