"""Render: files -> objects with file and line; errors name file:line (YAML fixtures in testdata/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.reconciler.render import RenderError, render

DATA = Path(__file__).parent / "testdata"


def _files(*names: str) -> list[tuple[str, bytes]]:
    return [(f"apps/{n}", (DATA / n).read_bytes()) for n in names]


def test_multi_document_with_lines() -> None:
    manifests = render(_files("multi.yaml"))
    assert [(m.obj["metadata"]["name"], m.where) for m in manifests] == [
        ("one", "apps/multi.yaml:2"),
        ("web", "apps/multi.yaml:9"),
    ]


def test_bad_yaml_names_file_and_line() -> None:
    with pytest.raises(RenderError) as caught:
        render(_files("multi.yaml", "bad-indent.yaml"))
    problem = caught.value.problems[0]
    assert problem.file == "apps/bad-indent.yaml"
    assert problem.line == 10
    assert "invalid YAML" in str(caught.value) and "apps/bad-indent.yaml:10" in str(caught.value)


def test_missing_fields_are_named() -> None:
    with pytest.raises(RenderError, match=r"apps/no-kind.yaml:1: object has no kind"):
        render(_files("no-kind.yaml"))


def test_list_kind_is_flattened() -> None:
    assert [m.obj["metadata"]["name"] for m in render(_files("list.yaml"))] == ["a", "b"]


def test_duplicate_objects_are_refused() -> None:
    with pytest.raises(RenderError, match=r"also defined at apps/multi\.yaml:2"):
        render(
            [
                *_files("multi.yaml"),
                ("apps/again.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n"),
            ]
        )


def test_json_and_scalars() -> None:
    assert render(
        [("a.json", b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}')]
    )
    with pytest.raises(RenderError, match=r"x.yaml:1: expected a Kubernetes object"):
        render([("x.yaml", b"just a string\n")])
    with pytest.raises(RenderError, match="values must be strings"):
        render(
            [
                (
                    "y.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\n  annotations: {a: 1}\n",
                )
            ]
        )


def test_empty_files_render_nothing() -> None:
    assert render([("empty.yaml", b"# nothing\n---\n")]) == []
