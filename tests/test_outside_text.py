"""Outside text (LLM answers) as stored, printed and reported: no secrets, no terminal escapes, no markup or
HTML, bounded size."""

import io
import json

import pytest
from fake_openai_server import TOY_MOVES, FakeOpenAI, decision
from rich.console import Console

from searchmgr.analysis.report import write_report
from searchmgr.cli import main
from searchmgr.progress import ConsoleReporter
from searchmgr.rundir import open_run
from searchmgr.sanitize import MAX_FIELD_CHARS, Redactor, for_terminal, md_escape
from searchmgr.search import explore

SECRET = "sk-test-SECRET-77aa01bb"
OTHER_KEY = "sk-proj-abcdefABCDEF0123456789"  # shaped like a key, not ours: redacted too
NASTY = (f"echo {SECRET} and {OTHER_KEY} \x1b]0;pwned\x07\x1b[2J\x1b[31m [bold red]markup[/] [/] "
         "<script>alert(1)</script> | # *x* ") + "y" * 20_000


def nasty_answers():
    count = iter(range(10 ** 6))
    return lambda body: decision(TOY_MOVES[next(count) % len(TOY_MOVES)], NASTY)


@pytest.fixture(scope="module")
def nasty_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SEARCHMGR_NASTY_KEY", SECRET)
    out = tmp_path_factory.mktemp("nasty") / "run"
    buf = io.StringIO()
    try:
        with FakeOpenAI(default=nasty_answers()) as srv:
            explore(["task=toy", "preset=smoke", "width=16", "segment_steps=10", "eval_every=5", "max_depth=3",
                     # every child from the manager, so its diagnoses are re-sent in its children's prompts (with
                     # the shipped start points and holds, 90 steps make no manager child below a manager child)
                     "uct.start=bounded", "uct.hold_first=false",
                     "budget.steps=90", "manager.name=openai", f"manager.base_url={srv.base_url}",
                     "manager.api_key_env=SEARCHMGR_NASTY_KEY", "manager.backoff_s=0", 'stopper.name="none"',
                     f"out={out}"], reporter=ConsoleReporter(Console(file=buf, width=200)))
        yield {"out": out, "printed": buf.getvalue(), "server": srv, "mp": mp}
    finally:
        mp.undo()


def test_keys_never_reach_the_store_or_the_console(nasty_run, capsys):
    out = nasty_run["out"]
    with open_run(out) as store:
        accepted = [d for d in store.decisions(1) if d.verdict == "accepted" and d.source == "openai"]
    assert accepted and "***" in accepted[0].raw_response and "***" in accepted[0].parsed["diagnosis"]
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and OTHER_KEY.encode() not in data, path
    assert main(["show", str(out), "--decisions"]) == 0
    shown = capsys.readouterr().out
    for text in (nasty_run["printed"], shown):
        assert SECRET not in text and OTHER_KEY not in text


def test_no_terminal_escapes_or_markup_reach_the_terminal(nasty_run, capsys):
    assert main(["show", str(nasty_run["out"]), "--decisions"]) == 0
    shown = capsys.readouterr().out
    for text in (nasty_run["printed"], shown):
        assert "\x1b" not in text and "\x07" not in text
    assert "[bold red]markup[/] [/]" in nasty_run["printed"]  # printed literally, not interpreted (nor a crash)


def test_stored_and_resent_text_is_capped(nasty_run):
    out, srv = nasty_run["out"], nasty_run["server"]
    with open_run(out) as store:
        parsed = [d.parsed for d in store.decisions(1) if d.parsed]
    assert parsed and all(len(p["diagnosis"]) <= MAX_FIELD_CHARS for p in parsed)
    prompts = [r["body"]["messages"][-1]["content"] for r in srv.requests]
    assert any("***" in p for p in prompts)  # an earlier (redacted) diagnosis was re-sent
    assert max(len(p) for p in prompts) < 3 * 4 * MAX_FIELD_CHARS  # a path of 3 capped diagnoses, not 3 x 20 kB
    assert (out / "tree.db").stat().st_size < 2_000_000


def test_report_markdown_carries_no_raw_html(nasty_run, tmp_path):
    report = write_report(nasty_run["out"], tmp_path / "report")
    md = report.markdown.read_text()
    assert "<script>" not in md and "\\<script\\>" in md
    assert "<script>" not in report.html.read_text()
    assert SECRET not in md


def test_sanitisers():
    assert for_terminal("a\x1b[2Jb\x1b]0;t\x07c\x9bd\u202ee\n") == "abcde\n"
    assert md_escape("<b>|*x*|</b>\n# h") == "\\<b\\>\\|\\*x\\*\\|\\</b\\> \\# h"
    assert Redactor((SECRET,))(f"key={SECRET}, other {OTHER_KEY}") == "key=***, other sk-***"
    assert json.dumps(Redactor()("token-abcdef12")) == '"token-***"'
