"""The catalogue is complete and the interface has no text outside it.

* every message has Vietnamese and English with the same ``{placeholders}``;
* every catalogue key the code uses exists: error codes of every layer, ``t(...)`` in
  Python, templates and JS, including keys built at run time (``t("role." + x)``),
  which are checked for every value ``x`` can take;
* templates and scripts carry no literal user-facing text.
"""

from __future__ import annotations

import ast
import json
import re
import string
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from media.camera import Reason
from server.api.schemas import DossierIn, SessionIn
from server.exports import COLUMNS as EXPORT_COLUMNS
from server.i18n import CATALOGUE_PATH, LANGUAGES, both, catalogue, t
from server.minutes import FIELDS as MINUTES_FIELDS
from server.minutes_docs import SECTIONS as MINUTES_SECTIONS
from server.models import (
    Admission,
    ParticipantRole,
    SessionKind,
    SessionStatus,
    StaffRole,
    StakeholderGroup,
)

ROOT = Path(__file__).resolve().parent.parent
PY_PACKAGES = ("server", "media", "storage", "transcription")
TEMPLATES = sorted((ROOT / "web" / "templates").glob("*.html"))
SCRIPTS = sorted((ROOT / "web" / "static" / "js").glob("*.js"))

SENTINEL = "\x00"  # stands for an expression (${...} in JS, {{ ... }} in templates)
KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


def py_files() -> list[Path]:
    out: list[Path] = []
    for pkg in PY_PACKAGES:
        out += [p for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts]
    return sorted(out)


# -- the catalogue itself --------------------------------------------------------------

def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_message_has_both_languages_with_the_same_placeholders() -> None:
    cat = catalogue()
    assert len(cat) > 100
    problems = []
    for key, entry in cat.items():
        if not KEY_RE.match(key):
            problems.append(f"{key}: not a dotted lower-case key")
        if set(entry) != set(LANGUAGES):
            problems.append(f"{key}: languages {sorted(entry)}")
            continue
        for lang in LANGUAGES:
            if not isinstance(entry[lang], str) or not entry[lang].strip():
                problems.append(f"{key}: empty {lang}")
        try:
            vi, en = placeholders(entry["vi"]), placeholders(entry["en"])
        except ValueError as exc:
            problems.append(f"{key}: bad braces ({exc})")
            continue
        if vi != en:
            problems.append(f"{key}: placeholders vi {sorted(vi)} != en {sorted(en)}")
    assert not problems, "\n".join(problems)


def test_catalogue_file_is_sorted_and_canonically_formatted() -> None:
    raw = CATALOGUE_PATH.read_text(encoding="utf-8")
    data = json.loads(raw)
    canonical = json.dumps(dict(sorted(data.items())), indent=1, ensure_ascii=False)
    assert raw.rstrip("\n") == canonical, "messages.json: sort keys, indent=1, ensure_ascii=False"


def test_rendering() -> None:
    assert t("join.device_failed", "en", {"detail": "NotAllowedError"}).count("NotAllowedError")
    assert t("no.such.key", "vi") == "no.such.key"
    assert both("model.missing") == {
        "vi": catalogue()["model.missing"]["vi"], "en": catalogue()["model.missing"]["en"],
    }


# -- keys built at run time: every value they can take ------------------------------------

def audit_kinds() -> set[str]:
    return set(python_keys().audit_kinds)


def families() -> dict[str, set[str]]:
    phases = set(typing.get_args(DossierIn.model_fields["phase"].annotation))
    modes = set(typing.get_args(SessionIn.model_fields["mode"].annotation))
    assert phases == {"evaluation", "appraisal"} and modes == {"online", "hybrid"}
    return {
        "role.": {r.value for r in ParticipantRole} | {r.value for r in StaffRole},
        "kind.": {k.value for k in SessionKind},
        "status.": {s.value for s in SessionStatus},
        "phase.": phases,
        "mode.": modes,
        "recstatus.": {"recording", "stored", "failed", "empty"},
        "trstatus.": {"none", "pending", "running", "done", "failed"},
        "recording.kind.": {"audio", "video"},
        "recording.source.": {"microphone", "camera", "screen"},
        "admission.": {a.value for a in Admission},
        "event.": audit_kinds(),
        "report.camera_reason.": {r.value for r in Reason},
        "panel.state.": {"warned", "non_compliant"},
        "composite.status.": {"none", "pending", "running", "done", "failed", "empty"},
        "alert.": {"camera_warning", "camera_non_compliant", "camera_ok"},
        "minutes.section.": set(MINUTES_SECTIONS),
        "minutes.title.": {k.value for k in SessionKind},
        "minutes.field.": set(MINUTES_FIELDS),
        "group.": {g.value for g in StakeholderGroup},
        "stats.export.": set(EXPORT_COLUMNS),
    }


def expand(prefix: str, where: str) -> set[str]:
    fam = families()
    assert prefix in fam, f"{where}: key built from {prefix!r} + ...: add its values to families()"
    return {prefix + v for v in fam[prefix]}


# -- Python: error codes, t()/both(), audit kinds -------------------------------------------

@dataclass
class PyKeys:
    keys: dict[str, str]  # key -> where
    prefixes: dict[str, str]  # dynamic prefix -> where
    audit_kinds: dict[str, str]


# Calls whose argument at the given position is a catalogue key.
KEY_ARGS = {
    "ApiError": 1, "SignalError": 0, "SdpError": 0, "JoinTokenError": 0,
    "TranscriptionError": 0, "ModelError": 0, "AudioError": 0,
    "t": 0, "both": 0, "error_body": 0, "error_response": 1, "send_error": 1,
    "get_or_404": 3, "_fail": 1,
}


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(
        n.value, str)]


def _assigned_strings(scope: ast.AST, name: str) -> list[str]:
    """String constants assigned to ``name`` (also in tuple unpacking) within ``scope``."""
    out: list[str] = []
    for node in ast.walk(scope):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == name:
                out += _strings(node.value)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                for tgt, val in zip(target.elts, node.value.elts, strict=False):
                    if isinstance(tgt, ast.Name) and tgt.id == name:
                        out += _strings(val)
    return out


def _loop_strings(parents: list[ast.AST], name: str) -> list[str] | None:
    """Strings iterated by the ``for name in ...`` (statement or comprehension) around us."""
    for parent in reversed(parents):
        gens = parent.generators if isinstance(
            parent, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
        ) else [parent] if isinstance(parent, ast.For | ast.AsyncFor) else []
        for gen in gens:
            if isinstance(gen.target, ast.Name) and gen.target.id == name:
                found = _strings(gen.iter)
                for n in ast.walk(gen.iter):
                    if isinstance(n, ast.Starred) and isinstance(n.value, ast.Name):
                        found += _assigned_strings(parents[0], n.value.id)
                return found
    return None


def _walk_with_parents(node: ast.AST, parents: list[ast.AST]) -> Iterator[tuple[ast.AST, list]]:
    yield node, parents
    for child in ast.iter_child_nodes(node):
        yield from _walk_with_parents(child, [*parents, node])


_py_cache: list[PyKeys] = []


def python_keys() -> PyKeys:
    if _py_cache:
        return _py_cache[0]
    keys: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for path in py_files():
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for node, parents in _walk_with_parents(tree, []):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:  # StorageError subclasses: default_code = "..."
                    if isinstance(stmt, ast.Assign | ast.AnnAssign):
                        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                        if any(isinstance(x, ast.Name) and x.id.endswith("code")
                               for x in targets) and stmt.value is not None:
                            keys.update(dict.fromkeys(_strings(stmt.value), where))
            elif isinstance(node, ast.Assign):
                names = [x.id for x in node.targets if isinstance(x, ast.Name)]
                if any(n.endswith("CODES") for n in names) and isinstance(node.value, ast.Dict):
                    # CLOSE_CODES: code -> close code; _HTTP_CODES: status -> code.
                    for k, v in zip(node.value.keys, node.value.values, strict=True):
                        for c in (k, v):
                            if isinstance(c, ast.Constant) and isinstance(c.value, str):
                                keys[c.value] = where
                if any(n.endswith("_KEYS") for n in names):
                    keys.update(dict.fromkeys(_strings(node.value), where))
            elif isinstance(node, ast.Call):
                name = _call_name(node)
                func = node.func
                if (name == "get" and isinstance(func, ast.Attribute)
                        and isinstance(func.value, ast.Name) and func.value.id.endswith("CODES")
                        and len(node.args) > 1):
                    keys.update(dict.fromkeys(_strings(node.args[1]), where))
                if name == "record" and isinstance(func, ast.Attribute) and isinstance(
                        func.value, ast.Name) and func.value.id == "audit":
                    kind = node.args[1]
                    if isinstance(kind, ast.Constant):
                        kinds[kind.value] = where
                    else:
                        assert isinstance(kind, ast.Name), f"{where}: audit kind {ast.dump(kind)}"
                        # The name may be bound in an enclosing function (a closure
                        # handed to retry_transient): look outwards, innermost first.
                        scopes = [p for p in reversed(parents) if isinstance(
                            p, ast.FunctionDef | ast.AsyncFunctionDef)]
                        found = next((f for f in (_assigned_strings(sc, kind.id)
                                                  for sc in scopes) if f), None)
                        # A helper passing kinds through names them in AUDIT_KINDS.
                        found = found or _assigned_strings(tree, "AUDIT_KINDS")
                        assert found, f"{where}: cannot tell the audit kinds of {kind.id}"
                        kinds.update(dict.fromkeys(found, where))
                    continue
                pos = KEY_ARGS.get(name)
                if pos is None or len(node.args) <= pos:
                    continue
                arg = node.args[pos]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    keys[arg.value] = where
                elif isinstance(arg, ast.JoinedStr):
                    head = arg.values[0]
                    assert isinstance(head, ast.Constant), f"{where}: f-string key"
                    prefixes[head.value] = where
                elif isinstance(arg, ast.Name):
                    looped = _loop_strings(parents, arg.id)
                    if looped is not None:
                        keys.update(dict.fromkeys(looped, where))
                # Anything else (exc.code, t.error_code) passes a code made elsewhere.
    _py_cache.append(PyKeys(keys, prefixes, kinds))
    return _py_cache[0]


def test_python_scan_finds_what_it_should() -> None:
    """The scanner itself works: keys of every kind of use are found."""
    found = python_keys()
    for key in ["sdp.unparsable", "sdp.rejected", "storage.exists", "storage.error",
                "model.missing", "model.corrupt", "audio.unreadable", "join.expired",
                "signal.timeout", "consent.required", "http.error", "http.not_found",
                "session.not_found", "auth.csrf", "transcript.failed", "consent.rights",
                "consent.title", "participant.not_found"]:
        assert key in found.keys, key
    assert "role." in found.prefixes
    for kind in ["participant.joined", "recording.empty", "recording.store_failed",
                 "recording.stored", "transcript.stored", "session.ended"]:
        assert kind in found.audit_kinds, kind
    assert "session.create" not in found.keys  # a permission, not a message


def test_every_key_used_in_python_exists() -> None:
    cat = catalogue()
    found = python_keys()
    missing = [f"{k} ({w})" for k, w in sorted(found.keys.items()) if k not in cat]
    for prefix, where in found.prefixes.items():
        missing += [f"{k} ({where})" for k in sorted(expand(prefix, where)) if k not in cat]
    missing += [f"event.{k} ({w})" for k, w in sorted(found.audit_kinds.items())
                if f"event.{k}" not in cat]
    assert not missing, "missing from messages.json:\n" + "\n".join(missing)


@pytest.mark.parametrize("prefix", ["role.", "kind.", "status.", "phase.", "recstatus.",
                                    "trstatus.", "event.", "recording.kind.", "mode."])
def test_every_value_of_a_dynamic_key_exists(prefix: str) -> None:
    missing = sorted(k for k in expand(prefix, "families") if k not in catalogue())
    assert not missing, missing


# -- JavaScript --------------------------------------------------------------------------

@dataclass
class Tok:
    kind: str  # "str" | "punct" | "word" | "regex"
    value: str  # for "str": the static text (template parts joined, expressions removed)
    line: int
    template: bool = False


_REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^") | {"return", "typeof", "case", "do", "else"}


def js_tokens(src: str) -> list[Tok]:
    """A small JS lexer: enough for strings, template literals, regexes and comments."""
    toks: list[Tok] = []
    n, line = len(src), 1
    brace_stack: list[str] = []  # "{" for a block, "${" for a template expression

    def prev_allows_regex() -> bool:
        if not toks:
            return True
        p = toks[-1]
        return (p.kind == "punct" and p.value in _REGEX_AFTER) or (
            p.kind == "word" and p.value in _REGEX_AFTER)

    def read_template(j: int) -> int:
        """Lex a template literal from after its backquote; returns the index past it."""
        nonlocal line
        parts: list[str] = []
        start_line = line
        while j < n:
            c = src[j]
            if c == "\\":
                parts.append(src[j:j + 2])
                j += 2
            elif c == "`":
                toks.append(Tok("str", "".join(parts), start_line, template=True))
                return j + 1
            elif c == "$" and src[j + 1:j + 2] == "{":
                parts.append(SENTINEL)
                brace_stack.append("${")
                j = lex(j + 2, stop_at_template_end=True)
            else:
                if c == "\n":
                    line += 1
                parts.append(c)
                j += 1
        raise AssertionError("unterminated template literal")

    def lex(j: int, stop_at_template_end: bool = False) -> int:
        nonlocal line
        depth = len(brace_stack)
        while j < n:
            c = src[j]
            if c == "\n":
                line += 1
                j += 1
            elif c.isspace():
                j += 1
            elif src.startswith("//", j):
                j = src.find("\n", j)
                j = n if j < 0 else j
            elif src.startswith("/*", j):
                end = src.index("*/", j + 2)
                line += src.count("\n", j, end)
                j = end + 2
            elif c in "'\"":
                k = j + 1
                buf = []
                while src[k] != c:
                    if src[k] == "\\":
                        buf.append(src[k + 1])
                        k += 2
                    else:
                        assert src[k] != "\n", f"line {line}: newline in string"
                        buf.append(src[k])
                        k += 1
                toks.append(Tok("str", "".join(buf), line))
                j = k + 1
            elif c == "`":
                j = read_template(j + 1)
            elif c == "/" and prev_allows_regex():
                k, in_class = j + 1, False
                while True:
                    ch = src[k]
                    if ch == "\\":
                        k += 2
                        continue
                    if ch == "[":
                        in_class = True
                    elif ch == "]":
                        in_class = False
                    elif ch == "/" and not in_class:
                        break
                    k += 1
                k += 1
                while k < n and src[k].isalpha():
                    k += 1
                toks.append(Tok("regex", src[j:k], line))
                j = k
            elif c.isalnum() or c in "_$":
                k = j
                while k < n and (src[k].isalnum() or src[k] in "_$"):
                    k += 1
                toks.append(Tok("word", src[j:k], line))
                j = k
            else:
                if c == "{":
                    brace_stack.append("{")
                elif c == "}":
                    opened = brace_stack.pop()
                    if opened == "${" and stop_at_template_end and len(brace_stack) < depth:
                        return j + 1
                toks.append(Tok("punct", c, line))
                j += 1
        assert not stop_at_template_end, "unterminated ${ expression"
        return j

    lex(0)
    assert not brace_stack, "unbalanced braces"
    return toks


def call_args(toks: list[Tok], open_index: int) -> list[list[Tok]]:
    """The top-level arguments of the call whose "(" is at ``open_index``."""
    args: list[list[Tok]] = [[]]
    depth = 0
    for tok in toks[open_index + 1:]:
        if tok.kind == "punct" and tok.value in "([{":
            depth += 1
        elif tok.kind == "punct" and tok.value in ")]}":
            if depth == 0:
                return [a for a in args if a]
            depth -= 1
        elif tok.kind == "punct" and tok.value == "," and depth == 0:
            args.append([])
            continue
        args[-1].append(tok)
    raise AssertionError("unclosed call")


# Expressions passed to t() whose value is a code made elsewhere (server error codes).
JS_DYNAMIC_KEYS = {"err.code"}


def js_keys(src: str, where: str) -> tuple[dict[str, str], dict[str, str]]:
    """(keys, dynamic prefixes) used through t(...) in ``src``."""
    toks = js_tokens(src)
    keys: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    for i, tok in enumerate(toks):
        if not (tok.kind == "word" and tok.value == "t" and i + 1 < len(toks)
                and toks[i + 1].value == "(" and toks[i + 1].kind == "punct"):
            continue
        if i > 0 and toks[i - 1].kind == "punct" and toks[i - 1].value == ".":
            continue  # obj.t(...)
        if i > 0 and toks[i - 1].kind == "word" and toks[i - 1].value == "function":
            continue  # the definition
        at = f"{where}:{tok.line}"
        first = call_args(toks, i + 1)[0]
        strs = [x for x in first if x.kind == "str"]
        if len(first) == 1 and strs and not strs[0].template:
            keys[strs[0].value] = at
        elif (len(first) >= 3 and first[0].kind == "str" and first[1].value == "+"
              and first[0].value.endswith(".")):
            prefixes[first[0].value] = at
        elif strs and any(x.value == "?" for x in first):
            keys.update(dict.fromkeys((s.value for s in strs), at))
        else:
            expr = "".join(x.value for x in first)
            assert expr in JS_DYNAMIC_KEYS, f"{at}: cannot tell which keys t({expr}) uses"
    return keys, prefixes


def test_js_lexer_and_key_scan() -> None:
    src = (
        "// t('comment.key') is a comment\n"
        "const re = /\\{(\\w+)\\}/g; /* t(\"block.comment\") */\n"
        "x.textContent = `${t(\"role.\" + r)} · ${a ? t(\"a.b\") : \"\"}`;\n"
        "t(on ? 'join.on' : 'join.off'); t('x.y', { n: 1 }); obj.t('not.a.call');\n"
        "t(err.code);\n"
    )
    keys, prefixes = js_keys(src, "sample")
    assert set(keys) == {"a.b", "join.on", "join.off", "x.y"}
    assert set(prefixes) == {"role."}
    with pytest.raises(AssertionError, match="cannot tell"):
        js_keys("t(someVariable)", "sample")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_key_used_in_js_exists(path: Path) -> None:
    keys, prefixes = js_keys(path.read_text(encoding="utf-8"), path.name)
    wanted = dict(keys)
    for prefix, where in prefixes.items():
        wanted.update(dict.fromkeys(expand(prefix, where), where))
    missing = [f"{k} ({w})" for k, w in sorted(wanted.items()) if k not in catalogue()]
    assert not missing, "missing from messages.json:\n" + "\n".join(missing)


def test_js_keys_are_found() -> None:
    allkeys: set[str] = set()
    allprefixes: set[str] = set()
    for path in SCRIPTS:
        keys, prefixes = js_keys(path.read_text(encoding="utf-8"), path.name)
        allkeys |= set(keys)
        allprefixes |= set(prefixes)
    assert {"join.on", "join.off", "common.copied", "session.end_confirm"} <= allkeys
    assert {"role.", "kind.", "status.", "phase.", "recstatus.", "trstatus.", "event.",
            "recording.kind."} <= allprefixes


def literal_js_text(src: str) -> list[str]:
    """String literals that look like words for people rather than code.

    Flagged: any literal with a letter that is shown (assigned to textContent/innerText/
    innerHTML/title/placeholder, passed to confirm/alert/prompt or as a child of el()),
    and any other literal with a letter and a space or a non-ASCII letter (a sentence),
    unless it is a catalogue key.
    """
    toks = js_tokens(src)
    cat = catalogue()
    shown: set[int] = set()
    code: set[int] = set()  # t() keys and prefixes, selectors
    for i, tok in enumerate(toks):
        if (tok.kind == "word" and tok.value in {"t", "$", "querySelector", "querySelectorAll",
                                                 "getElementById"}
                and i + 1 < len(toks) and toks[i + 1].value == "("):
            end = i + 2 + len(next(iter(call_args(toks, i + 1)), []))
            code.update(j for j in range(i + 2, end) if toks[j].kind == "str")
        if tok.kind == "word" and tok.value in {"textContent", "innerText", "innerHTML",
                                                "placeholder", "title", "ariaLabel"}:
            if i + 1 < len(toks) and toks[i + 1].value == "=":
                j = i + 2
                while j < len(toks) and toks[j].value not in {";", ")"}:
                    shown.add(j)
                    j += 1
        if (tok.kind == "word" and tok.value in {"confirm", "alert", "prompt", "el"}
                and i + 1 < len(toks) and toks[i + 1].value == "("):
            args = call_args(toks, i + 1)
            skip = 2 if tok.value == "el" else 0
            for arg in args[skip:]:
                if len(arg) == 1 and arg[0].kind == "str":
                    shown.add(toks.index(arg[0], i))
    out = []
    for i, tok in enumerate(toks):
        if tok.kind != "str" or tok.value in cat or i in code:
            continue
        value = tok.value.replace(SENTINEL, "")
        letters = any(ch.isalpha() for ch in value)
        sentence = letters and (
            " " in value.strip() or any(ch.isalpha() and not ch.isascii() for ch in value)
        )
        if (i in shown and letters) or sentence:
            out.append(f"line {tok.line}: {value!r}")
    return out


def test_js_literal_text_check_works() -> None:
    assert literal_js_text('el("td", {}, "Copied")') == ["line 1: 'Copied'"]
    assert literal_js_text('x.textContent = "Đã lưu";') == ["line 1: 'Đã lưu'"]
    assert literal_js_text('setStatus("connected", "You are connected")') != []
    assert literal_js_text('el("td", { class: "hint" }, "—"); t("join.on");') == []
    assert literal_js_text("x.textContent = `${a} · ${t('b.c')}`;") == []


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_js_has_no_literal_text(path: Path) -> None:
    found = literal_js_text(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name}: text outside the catalogue:\n" + "\n".join(found)


# -- templates -----------------------------------------------------------------------------

JINJA_T = re.compile(r"""\bt\(\s*(?P<arg>[^()]*?)\s*\)""")
JINJA_EXPR = re.compile(r"\{\{.*?\}\}", re.S)
JINJA_STMT = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.S)
# Names bound by {% for %} over keys listed in Python (server/api/join.py CONSENT_KEYS).
JINJA_DYNAMIC_KEYS = {"key"}
SHOWN_ATTRIBUTES = {"placeholder", "aria-label", "title", "alt"}


def template_keys(src: str, where: str) -> tuple[dict[str, str], dict[str, str]]:
    keys: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    for block in re.findall(r"\{\{.*?\}\}|\{%.*?%\}", src, re.S):
        for m in JINJA_T.finditer(block):
            arg = m.group("arg")
            line = src[:src.index(block)].count("\n") + 1
            at = f"{where}:{line}"
            if lit := re.fullmatch(r"""(['"])([^'"]+)\1""", arg):
                keys[lit.group(2)] = at
            elif dyn := re.fullmatch(r"""(['"])([^'"]+\.)\1\s*~\s*\w+""", arg):
                prefixes[dyn.group(2)] = at
            else:
                assert arg in JINJA_DYNAMIC_KEYS, f"{at}: cannot tell which keys t({arg}) uses"
    return keys, prefixes


class _TextScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[tuple[int, str]] = []
        self.attrs: list[tuple[int, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in SHOWN_ATTRIBUTES:
                self.attrs.append((self.getpos()[0], f"{tag} {name}", value or ""))

    def handle_data(self, data: str) -> None:
        self.texts.append((self.getpos()[0], data))


def literal_template_text(src: str) -> list[str]:
    """Letters outside Jinja in text nodes, and shown attributes that are not {{ ... }}."""
    # Replace Jinja with text of the same line count, so positions stay meaningful.
    def blank(m: re.Match[str]) -> str:
        return "\n" * m.group(0).count("\n")

    def sentinel(m: re.Match[str]) -> str:
        return SENTINEL + "\n" * m.group(0).count("\n")

    html = JINJA_EXPR.sub(sentinel, JINJA_STMT.sub(blank, src))
    scanner = _TextScanner()
    scanner.feed(html)
    scanner.close()
    out = []
    for line, data in scanner.texts:
        text = data.replace(SENTINEL, "")
        if any(ch.isalpha() for ch in text):
            out.append(f"line {line}: text {text.strip()!r}")
    for line, what, value in scanner.attrs:
        if value.strip() != SENTINEL:
            out.append(f"line {line}: {what}={value.replace(SENTINEL, '{{…}}')!r}")
    return out


def test_template_text_check_works() -> None:
    assert literal_template_text("<p>{{ t('a.b') }} — {{ x }} · →</p>") == []
    assert literal_template_text("<p>Hello {{ t('a.b') }}</p>") == ["line 1: text 'Hello'"]
    assert literal_template_text("{% if x %}<b>Xin chào</b>{% endif %}") == [
        "line 1: text 'Xin chào'"]
    assert literal_template_text('<input placeholder="Name">') == [
        "line 1: input placeholder='Name'"]
    assert literal_template_text('<input placeholder="{{ t(\'a.b\') }}" class="x">') == []
    assert literal_template_text('<img alt="{{ t(\'a\') }} logo">') != []
    keys, prefixes = template_keys("{{ t('a.b') }}{% for r in rs %}{{ t('role.' ~ r) }}"
                                   "{% endfor %}", "sample")
    assert (set(keys), set(prefixes)) == ({"a.b"}, {"role."})


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_has_no_literal_text(path: Path) -> None:
    found = literal_template_text(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name}: text outside the catalogue:\n" + "\n".join(found)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_key_used_in_a_template_exists(path: Path) -> None:
    keys, prefixes = template_keys(path.read_text(encoding="utf-8"), path.name)
    assert keys, f"{path.name}: no t(...) found"
    wanted = dict(keys)
    for prefix, where in prefixes.items():
        wanted.update(dict.fromkeys(expand(prefix, where), where))
    missing = [f"{k} ({w})" for k, w in sorted(wanted.items()) if k not in catalogue()]
    assert not missing, "missing from messages.json:\n" + "\n".join(missing)
