// colearn-chain explorer page: renders the contract summary, a vote grid per epoch, a score chart, and
// keeps them live with a long-poll on /api/events. No libraries and no external requests; every string
// that comes from the chain (CIDs above all) is inserted as text, never as HTML.
'use strict';

const state = {
  summary: null,
  scores: null,
  seq: 0,
  page: 0, // 0 = newest epochs
  size: 50,
  total: 0,
  openDetails: new Set(), // epochs whose transaction list is expanded
  newestSeen: -1, // the newest epoch already shown: a newer one is highlighted when it appears
  headFor: null, // the learner list the table head was drawn for
  refreshing: false,
  refreshAgain: false,
};

const COLORS = ['#3867d6', '#e67e22', '#16a085', '#8e44ad', '#c0392b', '#2c3e50', '#d4ac0d', '#1abc9c', '#e84393', '#7f8c8d'];
const HEX = /^0x[0-9a-fA-F]+$/;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'style') node.style.cssText = value; // CSSOM, which the page's CSP allows
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('data-')) node.setAttribute(key, String(value));
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// ───────────────────────────── formatting

const short = (text, keep = 6) => (text && text.length > 2 * keep + 3 ? `${text.slice(0, keep + 2)}…${text.slice(-keep)}` : text || '');
const gas = (value) => (value === null || value === undefined ? '…' : value.toLocaleString('en-US'));
const score = (value) => (Math.abs(value) >= 1000 || (value !== 0 && Math.abs(value) < 0.001) ? value.toExponential(2) : value.toFixed(3));

function when(seconds) {
  if (!seconds) return '';
  const date = new Date(seconds * 1000);
  const delta = seconds - Date.now() / 1000;
  const rel = Math.abs(delta) < 90 ? `${Math.round(Math.abs(delta))} s` : Math.abs(delta) < 5400 ? `${Math.round(Math.abs(delta) / 60)} min` : `${(Math.abs(delta) / 3600).toFixed(1)} h`;
  return `${date.toISOString().replace('T', ' ').slice(0, 19)} UTC (${delta >= 0 ? 'in ' + rel : rel + ' ago'})`;
}

function explorerLink(kind, value, label) {
  const ex = state.summary && state.summary.explorer;
  const text = label || value;
  if (!ex || !(HEX.test(String(value)) || kind === 'block')) return el('span', { class: 'mono', title: String(value) }, text);
  return el('a', { class: 'mono', href: `${ex.base}/${kind}/${value}`, target: '_blank', rel: 'noopener noreferrer', title: `${value} on ${ex.name}` }, text);
}

const learnerLabel = (index) => `L${index}`;

// ───────────────────────────── summary and learners

function renderSummary() {
  const s = state.summary;
  if (!s) return;
  state.total = s.epoch_count;
  const contract = $('contract');
  contract.replaceChildren(explorerLink('address', s.address), ` · chain ${s.chain_id}`);
  const rule = s.proposer_votes ? 'seed: every learner votes' : 'colearn 0.2.8: the proposer does not vote';
  const rows = [
    ['address', explorerLink('address', s.address)],
    ['chain', `${s.chain_id}${s.explorer ? ' · ' + s.explorer.name : ' · local (no public explorer)'}`],
    ['deployed at block', explorerLink('block', s.deploy_block, String(s.deploy_block))],
    ['voting rule', rule],
    ['threshold', `${s.vote_threshold_bps} bps = ${s.approvals_needed} of ${s.voter_count} approvals`],
    ['timeouts', `proposal ${s.proposal_timeout} s · voting ${s.voting_timeout} s`],
    ['current epoch', el('span', { id: 'current-epoch' }, String(s.current_epoch))],
    ['phase', el('span', { class: 'phase', id: 'phase' }, s.phase, el('span', { class: 'muted' }, `  deadline ${when(s.deadline)}`))],
    ['current model', el('span', {}, el('span', { class: 'mono', id: 'current-cid' }, s.current_model.cid), `  since epoch ${s.current_model.since_epoch}`)],
    ['model digest', el('span', { class: 'mono' }, s.current_model.digest)],
    ['epochs', el('span', { class: 'counts' }, ...Object.entries(s.counts).map(([k, v]) => el('span', {}, `${v} ${k}`)))],
    ['read to block', `${s.synced_block}${s.gas_pending ? ` · ${s.gas_pending} receipts pending` : ''}`],
  ];
  $('summary').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  const err = $('poll-error');
  err.hidden = !s.poll_error;
  err.textContent = s.poll_error ? `cannot update from the chain: ${s.poll_error}` : '';
}

function renderLearners() {
  const s = state.summary;
  const sc = state.scores;
  if (!s) return;
  const n = s.learners.length;
  const stats = s.learners.map(() => ({ proposed: 0, accepted: 0, votes: 0, approvals: 0 }));
  if (sc) {
    sc.outcomes.forEach((outcome, i) => {
      const p = (sc.first_epoch + i) % n;
      if (outcome === 'accepted' || outcome === 'rejected') stats[p].proposed += 1;
      if (outcome === 'accepted') stats[p].accepted += 1;
    });
    sc.approve.forEach((column, j) => column.forEach((a) => {
      if (a !== null) { stats[j].votes += 1; stats[j].approvals += a; }
    }));
  }
  $('learners').tBodies[0].replaceChildren(...s.learners.map((address, j) => el('tr', {},
    el('td', {}, el('span', { style: `color:${COLORS[j % COLORS.length]}` }, learnerLabel(j))),
    el('td', {}, explorerLink('address', address)),
    el('td', {}, String(stats[j].proposed)),
    el('td', {}, String(stats[j].accepted)),
    el('td', {}, String(stats[j].votes)),
    el('td', {}, String(stats[j].approvals)))));
}

// ───────────────────────────── epochs table

function pageRange() {
  const hi = Math.max(state.total - state.page * state.size, 0);
  return [Math.max(hi - state.size, 0), hi];
}

function renderHead() {
  const s = state.summary;
  if (!s || state.headFor === s.learners.join()) return;
  state.headFor = s.learners.join();
  const cells = [el('th', {}, 'epoch'), el('th', {}, 'proposer'), el('th', {}, 'proposal CID')];
  s.learners.forEach((address, j) => cells.push(el('th', { class: 'learner-col', title: address, 'data-learner-index': j }, learnerLabel(j))));
  cells.push(el('th', {}, 'outcome'), el('th', {}, 'a / r'), el('th', {}, 'gas'), el('th', {}, 'transactions'));
  $('epochs-head').replaceChildren(...cells);
}

function voteCell(epoch, j, address) {
  const vote = epoch.votes.find((v) => v.learner_index === j);
  const isProposer = epoch.proposer_index === j;
  const kind = vote ? (vote.approve ? 'approve' : 'reject') : 'missing';
  const attrs = {
    class: `vote ${kind}${isProposer ? ' proposer' : ''}`, // the cell carries the facts; the chip inside, the look
    'data-epoch': epoch.epoch,
    'data-learner-index': j,
    'data-learner': address,
    'data-vote': kind,
    'data-proposer': isProposer ? '1' : null,
    'data-score': vote ? vote.score_fixed : null,
    title: vote
      ? `${learnerLabel(j)} ${address}\n${kind} · score ${vote.score}\ntx ${vote.tx.hash}\nblock ${vote.tx.block} · gas ${gas(vote.tx.gas_used)}`
      : `${learnerLabel(j)} ${address}: no vote${isProposer ? ' (proposer)' : ''}`,
  };
  const mark = kind === 'approve' ? '✓' : kind === 'reject' ? '✗' : '·';
  return el('td', attrs, el('span', { class: `chip ${kind}${isProposer ? ' proposer' : ''}` }, vote ? `${mark} ${score(vote.score)}` : mark));
}

function txRows(epoch) {
  const rows = [];
  const byLearner = (address) => {
    const j = state.summary.learners.findIndex((a) => a.toLowerCase() === String(address || '').toLowerCase());
    return j >= 0 ? learnerLabel(j) : short(address || '?');
  };
  const add = (what, tx) => rows.push(el('tr', { 'data-tx': tx.hash },
    el('td', {}, what),
    el('td', {}, explorerLink('tx', tx.hash)),
    el('td', {}, 'block ', explorerLink('block', tx.block, String(tx.block))),
    el('td', { class: 'num' }, `gas ${gas(tx.gas_used)}`)));
  if (epoch.proposal) add(`propose ${byLearner(epoch.proposer)}`, epoch.proposal.tx);
  for (const v of epoch.votes) add(`vote ${byLearner(v.voter)}`, v.tx);
  if (epoch.close && !epoch.votes.some((v) => v.tx.hash === epoch.close.hash)) add(`close by ${byLearner(epoch.close.from)}`, epoch.close);
  return rows;
}

function epochRows(epoch) {
  // Two rows per epoch: the vote grid, and under it (full width, folded) its transactions.
  const s = state.summary;
  const cid = epoch.proposal ? epoch.proposal.cid : '';
  const txs = txRows(epoch);
  const open = state.openDetails.has(epoch.epoch);
  const detail = el('tr', { class: 'txrow', 'data-txs-for': epoch.epoch, hidden: !open },
    el('td', { colspan: s.learners.length + 7 }, el('table', { class: 'txs' }, el('tbody', {}, ...txs))));
  const button = el('button', { type: 'button', class: 'txbtn', 'aria-expanded': String(open), disabled: !txs.length },
    `${txs.length} tx${txs.length === 1 ? '' : 's'} ${open ? '▾' : '▸'}`);
  button.addEventListener('click', () => {
    const nowOpen = detail.hidden;
    detail.hidden = !nowOpen;
    if (nowOpen) state.openDetails.add(epoch.epoch); else state.openDetails.delete(epoch.epoch);
    button.setAttribute('aria-expanded', String(nowOpen));
    button.textContent = `${txs.length} tx${txs.length === 1 ? '' : 's'} ${nowOpen ? '▾' : '▸'}`;
  });
  const fresh = state.newestSeen >= 0 && epoch.epoch > state.newestSeen;
  const row = el('tr', { class: fresh ? 'fresh' : null, 'data-epoch': epoch.epoch, 'data-outcome': epoch.outcome },
    el('td', { class: 'num' }, String(epoch.epoch)),
    el('td', { class: 'nowrap', title: epoch.proposer }, `${learnerLabel(epoch.proposer_index)} `, el('span', { class: 'mono' }, short(epoch.proposer, 4))),
    el('td', {}, cid ? el('span', { class: 'cid mono', title: `CID ${cid}\ndigest ${epoch.proposal.digest}` }, cid) : el('span', { class: 'muted' }, '—')),
    ...s.learners.map((address, j) => voteCell(epoch, j, address)),
    el('td', { class: `outcome ${epoch.outcome}` }, epoch.outcome),
    el('td', { class: 'num' }, `${epoch.approvals} / ${epoch.rejections}`),
    el('td', { class: 'num' }, txs.length ? gas(epoch.gas_used) : '—'),
    el('td', {}, button));
  return [row, detail];
}

async function loadPage() {
  let [lo, hi] = pageRange();
  let data = await getJSON(`/api/epochs?offset=${lo}&limit=${hi - lo}`);
  if (data.total !== state.total) { // epochs arrived since the summary: page over the newer total
    state.total = data.total;
    [lo, hi] = pageRange();
    data = await getJSON(`/api/epochs?offset=${lo}&limit=${hi - lo}`);
  }
  const epochs = data.epochs.slice().reverse();
  $('epochs-body').replaceChildren(...epochs.flatMap(epochRows));
  if (epochs.length) state.newestSeen = Math.max(state.newestSeen, epochs[0].epoch);
  const pages = Math.max(Math.ceil(state.total / state.size), 1);
  const first = data.first_epoch;
  $('page-info').textContent = state.total
    ? `epochs ${first + lo}–${first + hi - 1} of ${state.total} · page ${state.page + 1} of ${pages}`
    : 'no epochs yet';
  const go = (name) => document.querySelector(`#pager [data-go="${name}"]`);
  go('newest').disabled = go('newer').disabled = state.page === 0;
  go('oldest').disabled = go('older').disabled = state.page >= pages - 1;
}

// ───────────────────────────── chart

function drawChart() {
  const sc = state.scores;
  const canvas = $('chart');
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 800;
  const height = 260;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = '11px system-ui, sans-serif';
  if (!sc || !sc.outcomes.length) {
    ctx.fillStyle = '#687083';
    ctx.fillText('no votes yet', 12, 20);
    return;
  }
  const values = sc.scores.flat().filter((v) => v !== null);
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const pad = (hi - lo) * 0.08;
  lo -= pad; hi += pad;
  const n = sc.outcomes.length;
  const box = { left: 52, right: width - 12, top: 10, bottom: height - 34 };
  const x = (i) => box.left + (n === 1 ? (box.right - box.left) / 2 : (i / (n - 1)) * (box.right - box.left));
  const y = (v) => box.bottom - ((v - lo) / (hi - lo)) * (box.bottom - box.top);
  chartGeometry = { box, n, x, lo, hi };

  // axes and grid
  ctx.strokeStyle = '#e1e4ea';
  ctx.fillStyle = '#687083';
  ctx.lineWidth = 1;
  for (let k = 0; k <= 4; k += 1) {
    const v = lo + ((hi - lo) * k) / 4;
    ctx.beginPath(); ctx.moveTo(box.left, y(v)); ctx.lineTo(box.right, y(v)); ctx.stroke();
    ctx.fillText(score(v), 4, y(v) + 4);
  }
  const step = Math.max(1, Math.ceil(n / 10));
  for (let i = 0; i < n; i += step) ctx.fillText(String(sc.first_epoch + i), x(i) - 4, height - 6);
  // outcome strip: one mark per epoch under the plot
  const colors = { accepted: '#23a55a', rejected: '#d9434b', skipped: '#b8bec9', open: '#f5a623' };
  const bar = Math.max((box.right - box.left) / Math.max(n, 1), 1);
  sc.outcomes.forEach((outcome, i) => {
    ctx.fillStyle = colors[outcome] || '#ccc';
    ctx.fillRect(x(i) - bar / 2, box.bottom + 6, Math.max(bar - (bar > 3 ? 1 : 0), 1), 6);
  });
  // one line per learner; filled dots approve, hollow dots reject
  const dots = n <= 250;
  sc.scores.forEach((column, j) => {
    const color = COLORS[j % COLORS.length];
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    // Stroked in short pieces: in headless Chromium's software rasteriser, ten self-crossing paths of
    // 1,000 points took ~500 ms to paint; the same points in pieces of 8 segments take ~80 ms.
    let open = false;
    let pieces = 0;
    ctx.beginPath();
    column.forEach((v, i) => {
      if (v === null) { open = false; return; }
      if (open) {
        ctx.lineTo(x(i), y(v));
        pieces += 1;
        if (pieces % 8 === 0) { ctx.stroke(); ctx.beginPath(); ctx.moveTo(x(i), y(v)); }
      } else {
        ctx.moveTo(x(i), y(v));
      }
      open = true;
    });
    ctx.stroke();
    if (!dots) return;
    column.forEach((v, i) => {
      if (v === null) return;
      ctx.beginPath();
      ctx.arc(x(i), y(v), 3, 0, 2 * Math.PI);
      if (sc.approve[j][i]) { ctx.fillStyle = color; ctx.fill(); } else { ctx.fillStyle = '#fff'; ctx.fill(); ctx.stroke(); }
    });
  });
  $('legend').replaceChildren(...sc.learners.map((address, j) => el('span', { title: address },
    el('i', { style: `background:${COLORS[j % COLORS.length]}` }), learnerLabel(j))),
  el('span', { class: 'muted' }, '● approve  ○ reject  · strip: outcome per epoch'));
}

let chartGeometry = null;

function chartTip(event) {
  const tip = $('chart-tip');
  const sc = state.scores;
  if (!sc || !chartGeometry) return;
  const rect = $('chart').getBoundingClientRect();
  const px = event.clientX - rect.left;
  const { box, n } = chartGeometry;
  if (px < box.left - 5 || px > box.right + 5) { tip.hidden = true; return; }
  const i = n === 1 ? 0 : Math.round(((px - box.left) / (box.right - box.left)) * (n - 1));
  const lines = [`epoch ${sc.first_epoch + i}: ${sc.outcomes[i]}`];
  sc.learners.forEach((_, j) => {
    const v = sc.scores[j][i];
    lines.push(`${learnerLabel(j)} ${v === null ? '  no vote' : `${sc.approve[j][i] ? '✓' : '✗'} ${score(v)}`}`);
  });
  tip.textContent = lines.join('\n');
  tip.hidden = false;
  tip.style.left = `${Math.min(px + 12, rect.width - 160)}px`;
  tip.style.top = '8px';
}

// ───────────────────────────── live updates

function addEvents(events) {
  const list = $('events');
  for (const event of events) {
    const fields = Object.entries(event)
      .filter(([k]) => !['type', 'block', 'log_index', 'tx'].includes(k))
      .map(([k, v]) => `${k}=${k === 'score' ? score(Number(v) / 1e18) : typeof v === 'string' && v.length > 20 ? short(v) : v}`)
      .join(' ');
    list.prepend(el('li', {}, el('span', { class: 't' }, event.type), `block ${event.block} · ${fields}`));
  }
  while (list.children.length > 200) list.lastChild.remove();
}

async function refresh() {
  // Coalesce: while one refresh runs, remember that another is due, and run it once after.
  if (state.refreshing) { state.refreshAgain = true; return; }
  state.refreshing = true;
  try {
    do {
      state.refreshAgain = false;
      const [scores] = await Promise.all([getJSON('/api/scores'), loadPage()]);
      performance.mark('explorer:data');
      state.scores = scores;
      renderLearners();
      drawChart();
      performance.mark('explorer:drawn');
      document.body.dataset.seq = String(state.seq);
      document.body.dataset.epochs = String(state.total);
    } while (state.refreshAgain);
  } finally {
    state.refreshing = false;
  }
}

function setLive(on, text) {
  const live = $('live');
  live.className = `live ${on ? 'on' : 'off'}`;
  live.textContent = text;
}

async function follow() {
  for (;;) {
    try {
      const data = await getJSON(`/api/events?since=${state.seq}&wait=25`);
      setLive(true, 'live');
      if (data.seq !== state.seq) {
        const firstSync = state.seq === 0;
        state.seq = data.seq;
        state.summary = data.summary;
        renderSummary();
        renderHead();
        if (!firstSync) addEvents(data.events);
        await refresh();
      }
    } catch (error) {
      setLive(false, 'reconnecting…');
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

// ───────────────────────────── wiring

function wire() {
  document.querySelectorAll('#pager [data-go]').forEach((button) => button.addEventListener('click', () => {
    const pages = Math.max(Math.ceil(state.total / state.size), 1);
    const go = button.dataset.go;
    state.page = go === 'newest' ? 0 : go === 'oldest' ? pages - 1 : go === 'newer' ? Math.max(state.page - 1, 0) : Math.min(state.page + 1, pages - 1);
    loadPage();
  }));
  $('page-size').addEventListener('change', (event) => {
    state.size = Number(event.target.value);
    state.page = 0;
    loadPage();
  });
  $('jump').addEventListener('submit', (event) => {
    event.preventDefault();
    const target = Number($('jump-epoch').value);
    const first = state.scores ? state.scores.first_epoch : 0;
    const position = target - first;
    if (!Number.isFinite(position) || position < 0 || position >= state.total) return;
    state.page = Math.floor((state.total - 1 - position) / state.size);
    state.openDetails.add(target);
    loadPage();
  });
  $('chart').addEventListener('mousemove', chartTip);
  $('chart').addEventListener('mouseleave', () => { $('chart-tip').hidden = true; });
  window.addEventListener('resize', () => drawChart());
}

async function start() {
  wire();
  try {
    state.summary = await getJSON('/api/summary');
    state.seq = state.summary.seq;
    renderSummary();
    renderHead();
    await refresh();
    const recent = await getJSON(`/api/events?since=${Math.max(state.seq - 40, 0)}`);
    performance.mark('explorer:events-fetched');
    addEvents(recent.events);
    performance.mark('explorer:events');
    setLive(true, 'live');
    document.body.dataset.ready = '1';
  } catch (error) {
    setLive(false, 'server unreachable');
  }
  follow();
}

start();
