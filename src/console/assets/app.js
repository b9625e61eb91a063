// The console, without a framework: a few DOM helpers over Writ's own admin API. The page asks
// who is signed in (GET /console/api/session); every change sends the session's CSRF token in
// X-Writ-CSRF, asks for a reason and a confirmation, and shows the audit event it produced. The
// buttons follow the role (an auditor sees none), and the API refuses a role too small anyway.
// Text is only ever set with textContent: nothing from the API is parsed as HTML.
const main = document.getElementById('main');
const who = document.getElementById('who');
const nav = document.getElementById('nav');
const RANK = { auditor: 0, operator: 1, admin: 2 };
let session;

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) node.setAttribute(k, v);
  for (const c of children) if (c !== undefined) node.append(c);
  return node;
};
const may = (role) => session?.role !== undefined && RANK[session.role] >= RANK[role];

async function api(path, init = {}) {
  const headers = { accept: 'application/json', ...(init.body !== undefined && { 'content-type': 'application/json' }), ...(init.method && init.method !== 'GET' && { 'x-writ-csrf': session.csrf }) };
  const res = await fetch(path, { ...init, headers, credentials: 'same-origin', ...(init.body !== undefined && { body: JSON.stringify(init.body) }) });
  const body = res.status === 204 ? undefined : await res.json().catch(() => undefined);
  if (!res.ok) throw new Error(body?.detail ?? body?.error_description ?? `HTTP ${res.status}`);
  return body;
}

function table(rows, columns) {
  const head = el('tr', {}, ...columns.map(([title]) => el('th', {}, title)));
  const body = rows.map((row) => el('tr', {}, ...columns.map(([, cell]) => el('td', {}, cell(row)))));
  return el('table', {}, el('thead', {}, head), el('tbody', {}, ...body));
}

// ── Leases: what is live, and ending it (the blast radius first) ───────────────────────────
async function leasesPage() {
  const form = el('form', { id: 'lease-filters' },
    el('label', {}, 'User ', el('input', { name: 'subject', placeholder: 'sub' })),
    el('label', {}, 'Connector ', el('input', { name: 'connector', placeholder: 'spiffe://…' })),
    el('label', {}, 'Resource ', el('input', { name: 'audience', placeholder: 'https://…' })),
    el('label', {}, 'Status ', el('select', { name: 'status' }, ...['active', 'revoked', 'expired'].map((s) => el('option', { value: s }, s)))),
    el('button', { type: 'submit' }, 'Filter'));
  const list = el('div', { id: 'leases' });
  const panel = el('section', { id: 'revoke-panel', hidden: '' });
  main.replaceChildren(el('h1', {}, 'Live tasks and leases'), form, list, panel);
  const load = async () => {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v !== '') q.set(k, String(v));
    if (q.has('subject')) q.set('issuer', session.issuer);
    const { leases } = await api(`/v1/admin/leases?${q}`);
    const rows = leases.filter((l) => l.kind === 'access-token');
    list.replaceChildren(rows.length === 0 ? el('p', {}, 'No tokens match.') : table(rows, [
      ['User', (l) => l.subject ?? '–'],
      ['Connector', (l) => l.spiffe_id],
      ['Resource', (l) => l.audience.join(', ')],
      ['Task', (l) => (l.task_id ?? '–').slice(0, 8)],
      ['Expires', (l) => l.expires_at],
      ['Status', (l) => (l.revoked_at ? `revoked: ${l.revocation_reason}` : 'live')],
      ['', (l) => (may('operator') && !l.revoked_at && l.task_id ? revokeButton(l, panel, load) : '')],
    ]));
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); load().catch(fail); });
  await load();
}

function revokeButton(lease, panel, reload) {
  const button = el('button', { type: 'button', class: 'revoke', 'data-task': lease.task_id }, 'Revoke task…');
  button.addEventListener('click', () => revokeTask(lease, panel, reload).catch(fail));
  return button;
}

async function revokeTask(lease, panel, reload) {
  const selector = { task_id: lease.task_id };
  const radius = await api('/v1/admin/revocations', { method: 'POST', body: { ...selector, reason: 'blast radius', dry_run: true } });
  const reason = el('input', { name: 'reason', required: '', placeholder: 'why (recorded in the audit trail)' });
  const confirm = el('button', { type: 'submit', id: 'confirm-revoke' }, `Revoke ${radius.leases} token(s)`);
  const form = el('form', {}, el('label', {}, 'Reason ', reason), ' ', confirm);
  panel.replaceChildren(
    el('h2', {}, `Revoke task ${lease.task_id}`),
    el('p', { id: 'blast-radius' }, `This ends ${radius.leases} token(s) of ${lease.subject} via ${lease.spiffe_id}.`),
    form,
  );
  panel.hidden = false;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!window.confirm(`Revoke ${radius.leases} token(s) of task ${lease.task_id}?`)) return;
    const done = await api('/v1/admin/revocations', { method: 'POST', body: { ...selector, reason: reason.value } });
    const { events } = await api('/v1/admin/audit?type=revocation&limit=1');
    const event = events[0];
    panel.replaceChildren(el('p', { id: 'revoked', role: 'status' }, `Revoked ${done.revoked} token(s). Audit #${event.seq}: ${event.type} by ${event.actor} (${event.details.reason}).`));
    await reload();
  });
}

// ── The audit trail, and whether its chain verifies ────────────────────────────────────────
async function auditPage() {
  const verify = await api('/v1/admin/audit/verify');
  const { events } = await api('/v1/admin/audit?limit=50');
  main.replaceChildren(
    el('h1', {}, 'Audit trail'),
    el('p', { id: 'chain' }, verify.ok ? `Hash chain intact over ${verify.events} events.` : `Hash chain broken at #${verify.broken_at}: ${verify.reason}`),
    table(events, [
      ['#', (e) => String(e.seq)],
      ['When', (e) => e.at],
      ['Event', (e) => e.type],
      ['Person', (e) => (e.subject ? `${e.subject} (${e.subject_issuer ?? '?'})` : '–')],
      ['By', (e) => e.actor ?? '–'],
    ]),
  );
}

// ── Connectors: their entries, and the kill switch ──────────────────────────────────────────
async function connectorsPage() {
  const { entries } = await api('/v1/admin/entries?limit=500');
  const byId = new Map();
  for (const e of entries) byId.set(e.spiffe_id, [...(byId.get(e.spiffe_id) ?? []), e]);
  const panel = el('section', { id: 'connector-panel', hidden: '' });
  const rows = [...byId].map(([spiffeId, list]) => ({ spiffeId, list, enabled: list.some((e) => e.enabled) }));
  main.replaceChildren(el('h1', {}, 'Connectors'), table(rows, [
    ['SPIFFE ID', (r) => r.spiffeId],
    ['Entries', (r) => String(r.list.length)],
    ['Owner', (r) => r.list[0].metadata?.owner ?? '–'],
    ['State', (r) => (r.enabled ? 'enabled' : 'disabled')],
    ['', (r) => (may('operator') ? killSwitch(r, panel) : '')],
  ]), panel);
}

function killSwitch(row, panel) {
  const action = row.enabled ? 'disable' : 'enable';
  const button = el('button', { type: 'button', class: `connector-${action}`, 'data-spiffe-id': row.spiffeId }, row.enabled ? 'Disable…' : 'Enable…');
  button.addEventListener('click', () => {
    const reason = el('input', { name: 'reason', required: '', placeholder: 'why' });
    const form = el('form', {}, el('label', {}, 'Reason ', reason), ' ', el('button', { type: 'submit', id: 'confirm-connector' }, row.enabled ? 'Disable: revoke every SVID and token' : 'Enable'));
    panel.replaceChildren(el('h2', {}, `${row.enabled ? 'Disable' : 'Enable'} ${row.spiffeId}`), form);
    panel.hidden = false;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!window.confirm(`${action} ${row.spiffeId}?`)) return;
      await api(`/v1/admin/connectors/${encodeURIComponent(row.spiffeId)}/${action}`, { method: 'POST', body: { reason: reason.value } }).catch(fail);
      const { events } = await api(`/v1/admin/audit?type=connector.${action}d&limit=1`);
      await connectorsPage();
      document.getElementById('connector-panel').replaceWith(el('p', { id: 'connector-done', role: 'status' }, `Audit #${events[0].seq}: ${events[0].type} by ${events[0].actor} (${events[0].details.reason}).`));
    });
  });
  return button;
}

// ── Policies: the set in force, and a validate-before-save editor ─────────────────────────
async function policiesPage() {
  const current = await api('/v1/admin/policies');
  const editor = el('textarea', { id: 'policy-text', rows: '18', cols: '100', spellcheck: 'false' });
  editor.value = current.policies;
  const result = el('div', { id: 'policy-result' });
  const validate = el('button', { type: 'button', id: 'validate-policy' }, 'Validate');
  const save = el('button', { type: 'button', id: 'save-policy', disabled: '' }, 'Save as a new version');
  editor.addEventListener('input', () => save.setAttribute('disabled', ''));
  validate.addEventListener('click', async () => {
    const checked = await api('/v1/admin/policies/validate', { method: 'POST', body: { policies: editor.value } });
    if (checked.valid) save.removeAttribute('disabled');
    result.replaceChildren(checked.valid ? el('p', { id: 'policy-valid' }, 'Valid against the Writ schema.') : el('ul', { id: 'policy-errors' }, ...checked.errors.map((e) => el('li', {}, e))));
  });
  save.addEventListener('click', async () => {
    if (!window.confirm('Apply this policy set from the next decision on every replica?')) return;
    const saved = await api('/v1/admin/policies', { method: 'PUT', body: { policies: editor.value } });
    const { events } = await api('/v1/admin/audit?type=policy.updated&limit=1');
    result.replaceChildren(el('p', { id: 'policy-saved', role: 'status' }, `Version ${saved.version} in force. Audit #${events[0].seq}: policy.updated by ${events[0].actor}.`));
    save.setAttribute('disabled', '');
  });
  main.replaceChildren(
    el('h1', {}, 'Policies'),
    el('p', { id: 'policy-version' }, current.version === 0 ? 'No policy yet: everything is denied.' : `Version ${current.version}, by ${current.created_by} at ${current.created_at}.`),
    editor,
    el('p', {}, may('admin') ? validate : '', ' ', may('admin') ? save : ''),
    result,
  );
  if (!may('admin')) editor.setAttribute('readonly', '');
}

// ── Approvals waiting for an approver ────────────────────────────────────────────────────
async function approvalsPage() {
  const { approvals } = await api('/v1/approvals?status=pending');
  main.replaceChildren(el('h1', {}, 'Pending approvals'), approvals.length === 0 ? el('p', { id: 'no-approvals' }, 'Nothing waits for an approver.') : table(approvals, [
    ['User', (a) => a.user.sub],
    ['Connector', (a) => a.connector],
    ['Asks', (a) => `${a.tool} ${a.action} (${a.classification})`],
    ['Reason', (a) => a.reason ?? '–'],
    ['Expires', (a) => a.expires_at],
    ['', (a) => decisionButtons(a)],
  ]));
}

function decisionButtons(approval) {
  const buttons = ['approve', 'deny'].map((d) => {
    const b = el('button', { type: 'button', class: `approval-${d}` }, d === 'approve' ? 'Approve' : 'Deny');
    b.addEventListener('click', async () => {
      if (!window.confirm(`${d} ${approval.tool} for ${approval.user.sub}?`)) return;
      const decided = await api(`/v1/approvals/${approval.id}/${d}`, { method: 'POST', body: {} }).catch(fail);
      if (decided) await approvalsPage().then(() => main.append(el('p', { id: 'approval-done', role: 'status' }, `${decided.status} by ${decided.decided_by.sub}.`)));
    });
    return b;
  });
  return el('span', {}, ...buttons);
}

const PAGES = { leases: leasesPage, connectors: connectorsPage, policies: policiesPage, approvals: approvalsPage, audit: auditPage };

function fail(err) {
  main.append(el('p', { role: 'alert', class: 'error' }, err.message));
}

async function route() {
  const page = PAGES[location.hash.slice(1)] ?? leasesPage;
  await page();
}

async function start() {
  const res = await fetch('/console/api/session', { credentials: 'same-origin' });
  if (res.status === 401) {
    main.replaceChildren(el('p', {}, 'Sign in with your company account to see and end what is live.'), el('a', { href: '/console/login', id: 'sign-in' }, 'Sign in'));
    return;
  }
  session = await res.json();
  who.textContent = `${session.user} (${session.role ?? 'no role'})`;
  const out = el('button', { id: 'sign-out', type: 'button' }, 'Sign out');
  out.addEventListener('click', async () => {
    await api('/console/logout', { method: 'POST' });
    location.assign('/console/');
  });
  who.append(' ', out);
  nav.replaceChildren(...[['leases', 'Leases'], ['connectors', 'Connectors'], ['policies', 'Policies'], ['approvals', 'Approvals'], ['audit', 'Audit']].flatMap(([h, t]) => [el('a', { href: `#${h}` }, t), ' ']));
  if (session.role === undefined) {
    main.replaceChildren(el('p', { id: 'no-role' }, `Signed in as ${session.user}, who holds no admin role.`));
    return;
  }
  window.addEventListener('hashchange', () => route().catch(fail));
  await route();
}

start().catch(fail);
