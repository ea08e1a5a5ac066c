"""Golden tests: every envelope in ``soap_samples/`` against its hand-written expectation.

Each ``soap_samples/NN-name.xml`` is the raw body a CPE (or an ACS) sends; the ``.json``
next to it is what ``soap.envelope_to_plain(soap.parse_envelope(body))`` must return,
written by hand from the XML and TR-069 Annex A (see ``soap_samples/README.md``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acs.cwmp import soap

SAMPLES = Path(__file__).resolve().parents[2] / "soap_samples"
XML_FILES = sorted(SAMPLES.glob("*.xml"))

# Samples whose expectation (the spec's reading) the parser does not meet yet:
# file name -> reason. Each is reported, and stays strict so a fix is noticed.
KNOWN_DISAGREEMENTS: dict[str, str] = {}


def _case(path: Path) -> object:
    reason = KNOWN_DISAGREEMENTS.get(path.name)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(path, id=path.name, marks=marks)


def test_corpus_is_complete() -> None:
    assert len(XML_FILES) >= 32
    xml_stems = {p.stem for p in XML_FILES}
    json_stems = {p.stem for p in SAMPLES.glob("*.json")}
    assert xml_stems - json_stems == set(), "samples without an expectation"
    assert json_stems - xml_stems == set(), "expectations without a sample"
    assert set(KNOWN_DISAGREEMENTS) <= {p.name for p in XML_FILES}


@pytest.mark.parametrize("xml_path", [_case(p) for p in XML_FILES])
def test_sample_parses_as_expected(xml_path: Path) -> None:
    envelope = soap.parse_envelope(xml_path.read_bytes())
    with xml_path.with_suffix(".json").open(encoding="utf-8") as f:
        expected = json.load(f)
    assert soap.envelope_to_plain(envelope) == expected
