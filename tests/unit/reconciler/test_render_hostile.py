"""Render against hostile and broken input: alias bombs, duplicate keys, bad bytes, size caps.

Each case must fail only the render, quickly and with bounded memory, with a sentence
that names the file and line; none may raise anything but RenderError.
"""

from __future__ import annotations

import resource
import time

import pytest

from stacks.reconciler.render import Limits, RenderError, render

HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n"


def bomb(levels: int = 9, width: int = 9) -> bytes:
    lines = [HEAD.rstrip("\n"), "a0: &a0 [" + ",".join(['"lol"'] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return ("\n".join(lines) + "\n").encode()


def problems(files: list[tuple[str, bytes]], limits: Limits | None = None) -> str:
    with pytest.raises(RenderError) as caught:
        render(files, limits) if limits else render(files)
    return str(caught.value)


def test_alias_bomb_fails_fast_without_expanding() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    message = problems([("apps/bomb.yaml", bomb())])
    assert time.monotonic() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    assert "apps/bomb.yaml:1: the object expands to about" in message
    assert "limit for one object" in message


def test_aliases_that_stay_small_are_fine() -> None:
    text = HEAD + "data:\n  a: &v hello\n  b: *v\n"
    assert render([("ok.yaml", text.encode())])[0].obj["data"] == {"a": "hello", "b": "hello"}


def test_expansion_is_bounded_per_application_too() -> None:
    small = Limits(object_bytes=200_000, render_bytes=120_000)
    files = [
        (f"apps/{n}.yaml", bomb(levels=2, width=20).replace(b"name: bomb", f"name: {n}".encode()))
        for n in ("a", "b", "c")
    ]
    message = problems(files, small)
    assert "apps/c.yaml:1: the objects up to this one expand to about" in message


def test_self_referring_alias_is_refused() -> None:
    assert "refers to itself" in problems([("apps/x.yaml", (HEAD + "x: &a [*a]\n").encode())])


def test_deep_nesting_is_refused() -> None:
    deep = HEAD + "x: " + "[" * 150 + "]" * 150 + "\n"
    assert "nested 151 levels deep" in problems([("apps/deep.yaml", deep.encode())])
    deeper = HEAD + "x: " + "[" * 5000 + "]" * 5000 + "\n"
    assert "apps/deep.yaml:4: invalid YAML" in problems([("apps/deep.yaml", deeper.encode())])
    json_deep = b'{"apiVersion": "v1", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert "nested too deeply" in problems([("apps/deep.json", json_deep)])


def test_merge_key_chains_stay_small() -> None:
    lines = [HEAD.rstrip("\n"), "m0: &m0 {k0: 1, k1: 2}"]
    for i in range(1, 40):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], x{i}: 1}}")
    started = time.monotonic()
    (manifest,) = render([("apps/m.yaml", "\n".join(lines).encode())])
    assert time.monotonic() - started < 1.0
    assert len(manifest.obj["m39"]) == 41  # k0, k1, x1..x39: merged keys are not repeated


def test_merge_keys_may_be_overridden() -> None:
    text = HEAD + "base: &b {a: '1', b: '2'}\ndata: {<<: *b, a: '3'}\n"
    assert render([("ok.yaml", text.encode())])[0].obj["data"] == {"a": "3", "b": "2"}


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    text = HEAD + "data:\n  password: first\n  password: second\n"
    message = problems([("apps/s.yaml", ("---\n" + text).encode())])
    assert "apps/s.yaml:7: duplicate key 'password' (first at line 6)" in message
    assert "first" not in message.split("(first at")[0] and "second" not in message
    two = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\nmetadata:\n  name: b\n"
    assert "apps/m.yaml:5: duplicate key 'metadata' (first at line 3)" in problems(
        [("apps/m.yaml", two.encode())]
    )


def test_duplicate_keys_in_json_are_refused_with_the_line() -> None:
    text = b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"},\n'
    text += b' "data": {"password": "first",\n  "password": "second"}}\n'
    message = problems([("apps/j.json", text)])
    assert "apps/j.json:3: duplicate key 'password' (first at line 2)" in message
    assert "second" not in message


def test_non_utf8_names_the_byte_and_line() -> None:
    message = problems([("apps/l1.yaml", HEAD.encode() + b"data: {k: caf\xe9}\n")])
    assert "apps/l1.yaml:4: the file is not UTF-8 text" in message
    assert f"byte {len(HEAD) + 13}, line 4" in message


def test_values_without_a_json_form() -> None:
    assert render([("d.yaml", (HEAD + "data: {d: 2024-01-01}\n").encode())])[0].obj["data"] == {
        "d": "2024-01-01"
    }
    assert "apps/x.yaml:4: the YAML tag !!binary" in problems(
        [("apps/x.yaml", (HEAD + "data: !!binary aGk=\n").encode())]
    )
    assert "apps/x.yaml:4: unsupported YAML tag '!thing'" in problems(
        [("apps/x.yaml", (HEAD + "data: !thing x\n").encode())]
    )
    assert "apps/x.yaml:4: the value" in problems(
        [("apps/x.yaml", (HEAD + "n: " + "1" * 5000 + "\n").encode())]
    )
    assert "control character U+0007" in problems(
        [("apps/x.yaml", (HEAD + "data: {k: a\x07}\n").encode())]
    )


def test_raw_input_is_bounded() -> None:
    limits = Limits(file_bytes=1000, total_bytes=1500, files=3, objects=4)
    big = HEAD.encode() + b"data: {k: '" + b"x" * 1000 + b"'}\n"
    assert "apps/big.yaml: the file is 1 KiB, over the 1000 B limit" in problems(
        [("apps/big.yaml", big)], limits
    )
    half = HEAD.encode() + b"data: {k: '" + b"x" * 700 + b"'}\n"
    assert "apps/b.yaml: the files up to this one add up to" in problems(
        [("apps/a.yaml", half), ("apps/b.yaml", half.replace(b"bomb", b"b"))], limits
    )
    many = b"\n---\n".join(HEAD.replace("bomb", f"n{i}").encode() for i in range(10))
    assert "more than 4 documents or objects" in problems([("apps/many.yaml", many)], limits)
    empties = b"---\n" * 100_000
    assert "more than 4 documents" in problems([("apps/e.yaml", empties)], Limits(objects=4))
    files = [(f"apps/{i}.yaml", b"") for i in range(5)]
    assert "more than 3 YAML/JSON files" in problems(files, limits)
