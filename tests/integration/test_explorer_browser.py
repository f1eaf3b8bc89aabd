"""The explorer page in headless Chromium shows exactly the votes on chain and updates without a reload.

Three real `colearn-chain agent` processes (own keys, a private Kubo node as the weight store) run four
epochs on Anvil; the explorer serves the contract; Chromium (Debian's package, driven through
chromedriver's W3C WebDriver API) opens the page. Its vote grid must equal the chain's VoteCast events,
cell by cell (approve / reject / missing, exact fixed-point score, proposer marked). Then the agents
run a fifth epoch and the page must show it in the same document (a marker set in the page survives).
A full-page screenshot is saved with the test's output.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent_harness import Consortium
from colearn_chain.explorer.server import serve_in_background
from colearn_chain.services.anvil import AnvilNode
from colearn_chain.services.kubo import KuboNode
from history_driver import fast_history
from webdriver import Browser, find_browser

pytestmark = pytest.mark.slow

TOY: dict[str, Any] = {"kind": "toy", "seed": 0, "dim": 4}
N = 3
EPOCHS = 4
#: Where the screenshot is also copied, when set (e.g. by CI to keep it as an artifact).
ARTIFACTS_ENV = "COLEARN_TEST_ARTIFACTS"
NO_BROWSER = (
    "the browser test needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
)

#: Every vote cell of the page's grid as {epoch, learner, vote, score, proposer}.
GRID_JS = """
return Array.from(document.querySelectorAll('#epochs-body td.vote')).map((td) => ({
  epoch: Number(td.dataset.epoch),
  learner: Number(td.dataset.learnerIndex),
  vote: td.dataset.vote,
  score: td.dataset.score || null,
  proposer: td.dataset.proposer === '1',
}));
"""

Cell = tuple[str, Any, bool]


def _chain_grid(consortium: Consortium, epochs: int) -> dict[tuple[int, int], Cell]:
    """(epoch, learner) -> (approve|reject|missing, score as on chain, is proposer), from the chain's events."""
    index: dict[str, int] = {a.address: i for i, a in enumerate(consortium.accounts)}
    grid: dict[tuple[int, int], Cell] = {
        (e, j): ("missing", None, j == e % N) for e in range(epochs) for j in range(N)
    }
    for vote in consortium.vote_events():
        j = index[vote.voter]
        grid[(vote.epoch, j)] = ("approve" if vote.approve else "reject", str(vote.score), j == vote.epoch % N)
    return grid


def _page_grid(browser: Browser) -> dict[tuple[int, int], Cell]:
    return {(c["epoch"], c["learner"]): (c["vote"], c["score"], c["proposer"]) for c in browser.execute(GRID_JS)}


#: The transaction rows of one epoch, once its list is unfolded: [hash, block, gas] as shown.
TXS_JS = """
const rows = document.querySelectorAll(`#epochs-body tr[data-txs-for="${arguments[0]}"] tr[data-tx]`);
return Array.from(rows).map((tr) => [tr.dataset.tx, ...Array.from(tr.cells).slice(2).map((td) => td.textContent)]);
"""


def _chain_txs(consortium: Consortium, epoch: int) -> list[list[str]]:
    """[hash, "block N", "gas G"] of every transaction that emitted an event of ``epoch``, in chain order."""
    w3 = consortium.client().w3
    rows: list[list[str]] = []
    for event in consortium.events():
        if getattr(event, "epoch", None) != epoch or type(event).__name__ == "EpochStarted":
            continue
        if any(row[0] == event.meta.tx_hash for row in rows):
            continue
        gas = w3.eth.get_transaction_receipt(event.meta.tx_hash)["gasUsed"]  # type: ignore[arg-type]
        rows.append([event.meta.tx_hash, f"block {event.meta.block_number}", f"gas {gas:,}"])
    return rows


def _run_agents(consortium: Consortium, until_epoch: int) -> None:
    consortium.start_all(until_epoch=until_epoch)
    codes = consortium.wait(timeout=180)
    logs = "\n".join(f"== agent {a.index} ==\n{a.log_text()[-3000:]}" for a in consortium.agents)
    assert codes == {i: 0 for i in range(N)}, logs


def test_explorer_page_shows_the_chain_votes_and_updates_without_reload(
    kubo_node: KuboNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = find_browser()
    if found is None:
        pytest.fail(NO_BROWSER)
    chromium, chromedriver = found
    with AnvilNode() as anvil:
        # Prepare: four epochs by real agents
        consortium = Consortium(anvil.url, tmp_path / "run", kubo_node.url, TOY, N).setup()
        assert consortium.deployment is not None
        try:
            _run_agents(consortium, EPOCHS)
            server, url = serve_in_background(anvil.url, consortium.deployment, 0, poll_interval=0.2)
            try:
                with Browser(chromium, chromedriver, log_path=tmp_path / "chromedriver.log") as browser:
                    # Execute: open the page
                    browser.get(url)
                    browser.wait_for(
                        "return document.body.dataset.ready === '1' && "
                        f"document.querySelectorAll('#epochs-body tr[data-epoch]').length >= {EPOCHS}"
                    )

                    # Assert: the grid is the chain's votes, cell by cell
                    # (epoch EPOCHS has just started: its row is there, with no votes yet)
                    assert _page_grid(browser) == _chain_grid(consortium, EPOCHS + 1)
                    summary = browser.execute(
                        "return [document.getElementById('current-epoch').textContent,"
                        " document.getElementById('current-cid').textContent]"
                    )
                    model = consortium.client().current_model()
                    assert summary == [str(EPOCHS), model.cid]

                    # Execute: one more epoch while the page stays open
                    browser.execute("window.__sameDocument = 'kept'; return true")
                    _run_agents(consortium, EPOCHS + 1)
                    browser.wait_for(
                        f"const row = document.querySelector('#epochs-body tr[data-epoch=\"{EPOCHS}\"]');"
                        " return row && row.dataset.outcome !== 'open'"
                        f" && row.querySelectorAll('td.vote:not([data-vote=\"missing\"])').length === {N}"
                        f" && document.getElementById('current-epoch').textContent === '{EPOCHS + 1}'",
                        timeout=30,
                    )

                    # Assert: it appeared in the same document, and matches the chain
                    assert browser.execute("return window.__sameDocument") == "kept"
                    browser.execute(f"document.querySelector('tr[data-epoch=\"{EPOCHS}\"] .txbtn').click(); return 1")
                    shown = browser.wait_for(  # gas shows once the server has the receipts
                        f"const rows = (() => {{ {TXS_JS} }})();"
                        " return rows.length > 0 && rows.every((r) => !r[2].includes('…')) && rows",
                        EPOCHS,
                        timeout=30,
                    )
                    assert shown == _chain_txs(consortium, EPOCHS)
                    page = {k: v for k, v in _page_grid(browser).items() if k[0] <= EPOCHS}
                    assert page == _chain_grid(consortium, EPOCHS + 1)
                    origins = browser.execute(
                        "return performance.getEntriesByType('resource').map((r) => new URL(r.name).origin)"
                    )
                    assert set(origins) <= {url.rstrip("/")}, f"the page made external requests: {set(origins)}"
                    shot = browser.screenshot(tmp_path / "explorer.png")
            finally:
                server.stop()
        finally:
            consortium.stop_all()
    saved = [shot]
    if os.environ.get(ARTIFACTS_ENV):
        target = Path(os.environ[ARTIFACTS_ENV]) / "explorer-browser.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        saved.append(Path(shutil.copyfile(shot, target)))
    with capsys.disabled():
        print(f"\nexplorer screenshot: {', '.join(str(p) for p in saved)}")


#: Epoch numbers of the rows on screen, top to bottom.
ROWS_JS = (
    "return Array.from(document.querySelectorAll('#epochs-body tr[data-epoch]'))"
    ".map((tr) => Number(tr.dataset.epoch))"
)


def test_explorer_pages_through_thousands_of_epochs(tmp_path: Path) -> None:
    found = find_browser()
    if found is None:
        pytest.fail(NO_BROWSER)
    epochs = 1200
    with AnvilNode() as anvil:
        # Prepare: 1,200 epochs of real transactions (2 learners), served
        deployment = fast_history(anvil.url, epochs, 2)
        server, url = serve_in_background(anvil.url, deployment, 0, poll_interval=0.2)
        try:
            with Browser(*found, log_path=tmp_path / "chromedriver.log") as browser:
                browser.get(url)
                browser.wait_for(
                    f"return document.body.dataset.ready === '1' && document.body.dataset.epochs === '{epochs + 1}'"
                )
                newest = browser.execute(ROWS_JS)

                # Execute: older, oldest, a jump, a bigger page
                browser.execute("document.querySelector('#pager [data-go=\"older\"]').click(); return 1")
                older = browser.wait_for(f"const r = (() => {{ {ROWS_JS} }})(); return r[0] === {epochs - 50} && r")
                browser.execute("document.querySelector('#pager [data-go=\"oldest\"]').click(); return 1")
                oldest = browser.wait_for(f"const r = (() => {{ {ROWS_JS} }})(); return r.includes(0) && r")
                browser.execute(
                    "document.getElementById('jump-epoch').value = '123';"
                    " document.getElementById('jump').requestSubmit(); return 1"
                )
                jumped = browser.wait_for(f"const r = (() => {{ {ROWS_JS} }})(); return r.includes(123) && r")
                unfolded = browser.execute("return !document.querySelector('tr[data-txs-for=\"123\"]').hidden")
                grid_123 = browser.execute(
                    "return Array.from(document.querySelectorAll('td.vote[data-epoch=\"123\"]'))"
                    ".map((td) => [td.dataset.vote, td.dataset.score])"
                )
                browser.execute(
                    "const s = document.getElementById('page-size'); s.value = '250';"
                    " s.dispatchEvent(new Event('change')); return 1"
                )
                big = browser.wait_for(f"const r = (() => {{ {ROWS_JS} }})(); return r.length === 250 && r")
                info = browser.execute("return document.getElementById('page-info').textContent")
        finally:
            server.stop()

    # Assert
    assert newest == list(range(epochs, epochs - 50, -1))
    assert older == list(range(epochs - 50, epochs - 100, -1))
    assert oldest == list(range(oldest[0], -1, -1)) and len(oldest) <= 50
    assert 123 in jumped and len(jumped) == 50 and unfolded
    record = server.history.epoch(123)
    votes_123 = sorted(record.votes, key=lambda v: v.learner_index)
    assert grid_123 == [["approve" if v.approve else "reject", str(v.score_fixed)] for v in votes_123]
    assert big == list(range(epochs, epochs - 250, -1))
    assert info == f"epochs {epochs - 249}\N{EN DASH}{epochs} of {epochs + 1} · page 1 of 5"
