"""debian_mirror: the Debian mirror from apt sources (one-line and deb822)."""

from __future__ import annotations

import pytest

from pgops.errors import LabError
from pgops.lab.image import debian_mirror, mirror_host


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_one_line_format(tmp_path):
    f = write(tmp_path, "sources.list", (
        "# deb http://commented.example/debian trixie main\n"
        "deb http://security.debian.org/debian-security trixie-security main\n"
        "deb http://x.example/debian trixie main\n"
    ))
    assert debian_mirror(sources=[f]) == "http://x.example/debian"


def test_one_line_with_options_and_trailing_slash(tmp_path):
    f = write(tmp_path, "sources.list",
              "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] https://m.example/debian/ trixie main\n")
    assert debian_mirror(sources=[f]) == "https://m.example/debian"


def test_deb822_format(tmp_path):
    f = write(tmp_path, "debian.sources", (
        "# URIs: http://commented.example/debian\n"
        "Types: deb\n"
        "URIs: http://security.debian.org/debian-security\n"
        "Suites: trixie-security\n"
        "Components: main\n"
        "\n"
        "Types: deb\n"
        "URIs: http://x.example/debian\n"
        "Suites: trixie trixie-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    ))
    assert debian_mirror(sources=[f]) == "http://x.example/debian"


def test_only_security_and_comments_is_an_error(tmp_path):
    f = write(tmp_path, "a.list", (
        "#deb http://commented.example/debian trixie main\n"
        "deb http://security.debian.org/debian-security trixie-security main\n"
        "URIs: http://deb.debian.org/debian-security\n"
        "deb http://apt.postgresql.org/pub/repos/apt trixie-pgdg main\n"
    ))
    with pytest.raises(LabError):
        debian_mirror(sources=[f])


def test_missing_files_skipped_and_first_match_wins(tmp_path):
    a = write(tmp_path, "a.list", "deb http://first.example/debian trixie main\n")
    b = write(tmp_path, "b.sources", "URIs: http://second.example/debian\n")
    assert debian_mirror(sources=[tmp_path / "absent.list", a, b]) == "http://first.example/debian"
    assert debian_mirror(sources=[b, a]) == "http://second.example/debian"


def test_no_sources_is_an_error(tmp_path):
    with pytest.raises(LabError):
        debian_mirror(sources=[tmp_path / "absent.list"])


def test_mirror_host():
    assert mirror_host("http://deb.example.org:8080/debian") == "deb.example.org"
    assert mirror_host("not a url") == ""
