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
/** How the audit trail names the signed-in person. */
const me = () => `user:${session.issuer}#${session.user}`;

class SessionEnded extends Error {}

async function api(path, init = {}) {
  const headers = { accept: 'application/json', ...(init.body !== undefined && { 'content-type': 'application/json' }), ...(init.method && init.method !== 'GET' && { 'x-writ-csrf': session.csrf }) };
  const res = await fetch(path, { ...init, headers, credentials: 'same-origin', ...(init.body !== undefined && { body: JSON.stringify(init.body) }) });
  const body = res.status === 204 ? undefined : await res.json().catch(() => undefined);
  // The session expired or sat idle too long: sign in again rather than show a broken page.
  if (res.status === 401 && path.startsWith('/v1/admin') && session) throw new SessionEnded(body?.detail ?? 'the console session has ended');
  if (!res.ok) throw new Error(body?.detail ?? body?.error_description ?? `HTTP ${res.status}`);
  return body;
}

/** The newest audit event of `type` made by the signed-in person: what a change just produced. */
async function myLatest(type) {
  const { events } = await api(`/v1/admin/audit?${new URLSearchParams({ type, actor: me(), limit: '1' })}`);
  return events[0];
}
const auditLine = (e) => `Audit #${e.seq}: ${e.type} by ${e.actor}${e.details.reason ? ` (${e.details.reason})` : ''}.`;

function table(rows, columns, attrs = {}) {
  const head = el('tr', {}, ...columns.map(([title]) => el('th', {}, title)));
  const body = rows.map((row) => el('tr', {}, ...columns.map(([, cell]) => el('td', {}, cell(row)))));
  return el('table', attrs, el('thead', {}, head), el('tbody', {}, ...body));
}
const link = (href, text, attrs = {}) => el('a', { href, ...attrs }, text);
const json = (value, id) => el('pre', { id }, JSON.stringify(value, null, 2));

/**
 * A change: a reason (required) and a confirmation before `run(reason)`; then `after(result)`
 * returns what to show in the panel (the audit event).
 */
function changeForm({ panel, title, summary, confirmLabel, confirmId, question, run, after }) {
  const reason = el('input', { name: 'reason', required: '', maxlength: '512', placeholder: 'why (recorded in the audit trail)' });
  const form = el('form', {}, el('label', {}, 'Reason ', reason), ' ', el('button', { type: 'submit', id: confirmId }, confirmLabel));
  panel.replaceChildren(el('h2', {}, title), ...(summary ? [summary] : []), form);
  panel.hidden = false;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!window.confirm(question)) return;
    try {
      const result = await run(reason.value);
      panel.replaceChildren(await after(result));
    } catch (err) {
      fail(err);
    }
  });
  reason.focus();
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
  const panel = el('section', { id: 'revoke-panel', class: 'danger', hidden: '' });
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
      ['', (l) => link(`#lease/${l.jti}`, 'Details', { class: 'lease-details', 'data-jti': l.jti })],
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
  changeForm({
    panel,
    title: `Revoke task ${lease.task_id}`,
    summary: el('p', { id: 'blast-radius' }, `This ends ${radius.leases} token(s) of ${lease.subject} via ${lease.spiffe_id}.`),
    confirmLabel: `Revoke ${radius.leases} token(s)`,
    confirmId: 'confirm-revoke',
    question: `Revoke ${radius.leases} token(s) of task ${lease.task_id}?`,
    run: (reason) => api('/v1/admin/revocations', { method: 'POST', body: { ...selector, reason } }),
    after: async (done) => {
      const event = await myLatest('revocation');
      await reload?.();
      return el('p', { id: 'revoked', role: 'status' }, `Revoked ${done.revoked} token(s). ${auditLine(event)}`);
    },
  });
}

// ── One lease: its token's claims, the decisions behind them, and what its task did ──────
async function leasePage(jti) {
  const lease = await api(`/v1/admin/leases/${encodeURIComponent(jti)}`);
  const panel = el('section', { id: 'revoke-panel', class: 'danger', hidden: '' });
  const facts = [
    ['Kind', lease.kind], ['User', lease.subject ? `${lease.subject} (${lease.subject_issuer})` : '–'], ['Connector', lease.spiffe_id],
    ['Resource', lease.audience.join(', ') || '–'], ['Task', lease.task_id ?? '–'], ['Issued', lease.issued_at], ['Expires', lease.expires_at],
    ['Status', lease.revoked_at ? `revoked at ${lease.revoked_at}: ${lease.revocation_reason}` : new Date(lease.expires_at) > new Date() ? 'live' : 'expired'],
  ];
  const live = !lease.revoked_at && new Date(lease.expires_at) > new Date();
  main.replaceChildren(
    el('h1', {}, `Lease ${lease.jti}`),
    el('dl', { id: 'lease-facts' }, ...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    may('operator') && live && lease.task_id ? revokeButton(lease, panel, () => leasePage(jti)) : '',
    panel,
    el('h2', {}, 'Token claims'),
    lease.claims ? json(lease.claims, 'lease-claims') : el('p', { id: 'lease-claims' }, 'No token claims were recorded for this lease.'),
    el('h2', {}, lease.policy_version === null ? 'Decisions at issuance' : `Decisions at issuance (policy version ${lease.policy_version})`),
    lease.decisions.length === 0 ? el('p', {}, 'None recorded.') : table(lease.decisions, [
      ['Tool', (d) => d.tool],
      ['Action', (d) => d.action],
      ['Decision', (d) => (d.allowed && (d.delegate?.allowed ?? true) ? (d.approval ? 'permit, approval required' : 'permit') : 'deny')],
      ['Policies', (d) => [...(d.policies ?? []), ...(d.delegate?.policies ?? [])].join(', ') || '– (no permit: denied by default)'],
    ], { id: 'lease-decisions' }),
    el('h2', {}, 'Audit events of the token and its task'),
    eventsTable(lease.events, { id: 'lease-events' }),
  );
}

/** What an event says, in a few words. */
function gist(e) {
  const d = e.details ?? {};
  const parts = [];
  if (d.tool) parts.push(`${d.tool}${d.action ? ` ${d.action}` : ''}`);
  if (typeof d.decision === 'boolean') parts.push(d.decision ? 'permit' : 'deny');
  else if (d.decision) parts.push(String(d.decision));
  if (Array.isArray(d.granted)) parts.push(`granted ${d.granted.flatMap((g) => g.tools ?? []).join(', ') || 'nothing'}`);
  if (d.reason) parts.push(String(d.reason));
  if (typeof d.revoked === 'number') parts.push(`${d.revoked} revoked`);
  if (d.jti && e.type !== 'token.issued') parts.push(`token ${String(d.jti).slice(0, 8)}`);
  return parts.join(' · ') || '–';
}
const personOf = (e) => (e.subject ? `${e.subject} (${e.subject_issuer ?? '?'})` : e.actor?.startsWith('user:') ? e.actor.slice(5) : '–');
const connectorOf = (e) => (e.actor?.startsWith('spiffe://') ? e.actor : (e.details?.connector ?? e.details?.client ?? e.details?.spiffeId ?? '–'));

function eventsTable(events, attrs) {
  return events.length === 0 ? el('p', attrs, 'No events.') : table(events, [
    ['#', (e) => String(e.seq)],
    ['When', (e) => e.at],
    ['Event', (e) => e.type],
    ['Person', personOf],
    ['Connector', connectorOf],
    ['By', (e) => e.actor ?? '–'],
    ['What', gist],
  ], attrs);
}

// ── The audit trail, with filters, and whether its chain verifies ──────────────────────────
async function auditPage() {
  const form = el('form', { id: 'audit-filters' },
    el('label', {}, 'Event ', el('input', { name: 'type', placeholder: 'token.* or revocation' })),
    el('label', {}, 'Person ', el('input', { name: 'subject', placeholder: 'sub' })),
    el('label', {}, 'By ', el('input', { name: 'actor', placeholder: 'spiffe://… or user:…' })),
    el('label', {}, 'Task ', el('input', { name: 'task_id', placeholder: 'task id' })),
    el('label', {}, 'Since ', el('input', { name: 'since', type: 'datetime-local' })),
    el('button', { type: 'submit' }, 'Filter'));
  const list = el('div', { id: 'audit-events' });
  const verify = await api('/v1/admin/audit/verify');
  main.replaceChildren(
    el('h1', {}, 'Audit trail'),
    el('p', { id: 'chain', class: verify.ok ? 'ok' : 'error' }, verify.ok ? `Hash chain intact over ${verify.events} events.` : `Hash chain broken at #${verify.broken_at}: ${verify.reason}`),
    verify.ok ? el('p', {}, 'Head ', el('code', { id: 'chain-head' }, verify.head), ' (record it elsewhere: a later walk that does not reach it means the trail was cut).') : '',
    form,
    list,
  );
  const load = async () => {
    const q = new URLSearchParams({ limit: '100' });
    for (const [k, v] of new FormData(form)) if (v !== '') q.set(k, k === 'since' ? new Date(String(v)).toISOString() : String(v));
    const { events } = await api(`/v1/admin/audit?${q}`);
    list.replaceChildren(eventsTable(events, { id: 'audit-table' }));
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); load().catch(fail); });
  await load();
}

// ── Connectors: their entries, SVIDs and tokens, and the kill switch ──────────────────────────
async function connectorsPage() {
  const { entries } = await api('/v1/admin/entries?limit=500');
  const byId = new Map();
  for (const e of entries) byId.set(e.spiffe_id, [...(byId.get(e.spiffe_id) ?? []), e]);
  const panel = el('section', { id: 'connector-panel', class: 'danger', hidden: '' });
  const rows = [...byId].map(([spiffeId, list]) => ({ spiffeId, list, enabled: list.some((e) => e.enabled) }));
  main.replaceChildren(el('h1', {}, 'Connectors'), table(rows, [
    ['SPIFFE ID', (r) => link(`#connector/${encodeURIComponent(r.spiffeId)}`, r.spiffeId, { class: 'connector-details' })],
    ['Entries', (r) => String(r.list.length)],
    ['Owner', (r) => r.list[0].metadata?.owner ?? '–'],
    ['State', (r) => (r.enabled ? 'enabled' : 'disabled')],
    ['', (r) => (may('operator') ? killSwitch(r, panel, connectorsPage) : '')],
  ]), panel);
}

async function connectorPage(spiffeId) {
  const { entries } = await api(`/v1/admin/entries?${new URLSearchParams({ spiffe_id_prefix: spiffeId, limit: '500' })}`);
  const mine = entries.filter((e) => e.spiffe_id === spiffeId);
  const { leases } = await api(`/v1/admin/leases?${new URLSearchParams({ connector: spiffeId, status: 'active' })}`);
  const held = leases.filter((l) => l.spiffe_id === spiffeId);
  const panel = el('section', { id: 'connector-panel', class: 'danger', hidden: '' });
  const row = { spiffeId, list: mine, enabled: mine.some((e) => e.enabled) };
  main.replaceChildren(
    el('h1', {}, spiffeId),
    el('p', {}, row.enabled ? 'Enabled. ' : 'Disabled. ', may('operator') && mine.length > 0 ? killSwitch(row, panel, () => connectorPage(spiffeId)) : ''),
    panel,
    el('h2', {}, 'Registration entries'),
    table(mine, [
      ['Id', (e) => e.id],
      ['Selectors', (e) => e.selectors.map((s) => `${s.type}:${s.value}`).join(', ') || '–'],
      ['Parent', (e) => e.parent_id ?? '–'],
      ['X.509-SVID TTL', (e) => `${e.x509_svid_ttl} s`],
      ['Admin', (e) => (e.admin ? 'yes' : 'no')],
      ['State', (e) => (e.enabled ? 'enabled' : 'disabled')],
    ], { id: 'connector-entries' }),
    el('h2', {}, 'Live SVIDs and tokens'),
    held.length === 0 ? el('p', { id: 'connector-leases' }, 'None live.') : table(held, [
      ['Kind', (l) => l.kind],
      ['Serial or user', (l) => l.serial ?? l.subject ?? '–'],
      ['Resource', (l) => l.audience.join(', ') || '–'],
      ['Issued', (l) => l.issued_at],
      ['Expires', (l) => l.expires_at],
      ['', (l) => link(`#lease/${l.jti}`, 'Details')],
    ], { id: 'connector-leases' }),
  );
}

function killSwitch(row, panel, reload) {
  const action = row.enabled ? 'disable' : 'enable';
  const button = el('button', { type: 'button', class: `connector-${action}`, 'data-spiffe-id': row.spiffeId }, row.enabled ? 'Disable…' : 'Enable…');
  button.addEventListener('click', () => changeForm({
    panel,
    title: `${row.enabled ? 'Disable' : 'Enable'} ${row.spiffeId}`,
    confirmLabel: row.enabled ? 'Disable: revoke every SVID and token' : 'Enable',
    confirmId: 'confirm-connector',
    question: `${action} ${row.spiffeId}?`,
    run: (reason) => api(`/v1/admin/connectors/${encodeURIComponent(row.spiffeId)}/${action}`, { method: 'POST', body: { reason } }),
    after: async () => {
      const event = await myLatest(`connector.${action}d`);
      await reload();
      document.getElementById('connector-panel').replaceWith(el('p', { id: 'connector-done', role: 'status' }, auditLine(event)));
      return '';
    },
  }));
  return button;
}

// ── Policies: the set in force, its history, and a validate-before-save editor ──────────────
async function policiesPage() {
  const [current, history] = await Promise.all([api('/v1/admin/policies'), api('/v1/admin/policies/versions?limit=50')]);
  const editor = el('textarea', { id: 'policy-text', rows: '18', cols: '100', spellcheck: 'false' });
  editor.value = current.policies;
  const result = el('div', { id: 'policy-result' });
  const validate = el('button', { type: 'button', id: 'validate-policy' }, 'Validate');
  const save = el('button', { type: 'button', id: 'save-policy', disabled: '' }, 'Save as a new version…');
  const panel = el('section', { id: 'policy-panel', class: 'danger', hidden: '' });
  const shown = el('div', { id: 'policy-shown' });
  editor.addEventListener('input', () => save.setAttribute('disabled', ''));
  validate.addEventListener('click', async () => {
    const checked = await api('/v1/admin/policies/validate', { method: 'POST', body: { policies: editor.value } }).catch(fail);
    if (!checked) return;
    if (checked.valid) save.removeAttribute('disabled');
    result.replaceChildren(checked.valid ? el('p', { id: 'policy-valid' }, 'Valid against the Writ schema.') : el('ul', { id: 'policy-errors' }, ...checked.errors.map((e) => el('li', {}, e))));
  });
  save.addEventListener('click', () => changeForm({
    panel,
    title: 'Save a new version',
    summary: el('p', {}, 'It is in force from the next decision on every replica.'),
    confirmLabel: 'Save',
    confirmId: 'confirm-policy',
    question: 'Apply this policy set from the next decision on every replica?',
    run: (reason) => api('/v1/admin/policies', { method: 'PUT', body: { policies: editor.value, reason } }),
    after: async (saved) => {
      const event = await myLatest('policy.updated');
      save.setAttribute('disabled', '');
      panel.hidden = true;
      result.replaceChildren(el('p', { id: 'policy-saved', role: 'status' }, `Version ${saved.version} in force. ${auditLine(event)}`));
      return '';
    },
  }));
  const showVersion = async (version) => {
    const v = await api(`/v1/admin/policies/versions/${version}`);
    shown.replaceChildren(el('h3', {}, `Version ${v.version}`), el('pre', { id: 'policy-version-text' }, v.policies));
  };
  main.replaceChildren(
    el('h1', {}, 'Policies'),
    el('p', { id: 'policy-version' }, current.version === 0 ? 'No policy yet: everything is denied.' : `Version ${current.version}, by ${current.created_by} at ${current.created_at}.`),
    editor,
    el('p', {}, may('admin') ? validate : '', ' ', may('admin') ? save : ''),
    panel,
    result,
    el('h2', {}, 'History'),
    table(history.versions, [
      ['Version', (v) => {
        const b = el('button', { type: 'button', class: 'show-version', 'data-version': String(v.version) }, String(v.version));
        b.addEventListener('click', () => showVersion(v.version).catch(fail));
        return b;
      }],
      ['When', (v) => v.created_at],
      ['By', (v) => v.created_by],
      ['Reason', (v) => v.reason ?? '–'],
      ['SHA-256', (v) => v.sha256.slice(0, 16)],
    ], { id: 'policy-history' }),
    shown,
  );
  if (!may('admin')) editor.setAttribute('readonly', '');
}

// ── Approvals waiting for an approver ────────────────────────────────────────────────────
async function approvalsPage(done) {
  const { approvals } = await api('/v1/approvals?status=pending');
  const panel = el('section', { id: 'approval-panel', hidden: '' });
  main.replaceChildren(el('h1', {}, 'Pending approvals'), approvals.length === 0 ? el('p', { id: 'no-approvals' }, 'Nothing waits for an approver.') : table(approvals, [
    ['User', (a) => a.user.sub],
    ['Connector', (a) => a.connector],
    ['Asks', (a) => `${a.tool} ${a.action} (${a.classification})`],
    ['Reason', (a) => a.reason ?? '–'],
    ['Expires', (a) => a.expires_at],
    ['', (a) => decisionButtons(a, panel)],
  ], { id: 'approvals' }), panel, ...(done ? [done] : []));
}

function decisionButtons(approval, panel) {
  // Approvers approve or deny; an operator who is not one of its approvers may deny (the API decides).
  const buttons = ['approve', 'deny'].map((d) => {
    const b = el('button', { type: 'button', class: `approval-${d}`, 'data-approval': approval.id }, d === 'approve' ? 'Approve…' : 'Deny…');
    b.addEventListener('click', () => changeForm({
      panel,
      title: `${d === 'approve' ? 'Approve' : 'Deny'} ${approval.tool} ${approval.action} for ${approval.user.sub}`,
      confirmLabel: d === 'approve' ? 'Approve' : 'Deny',
      confirmId: 'confirm-approval',
      question: `${d} ${approval.tool} for ${approval.user.sub}?`,
      run: (reason) => api(`/v1/approvals/${approval.id}/${d}`, { method: 'POST', body: { reason } }),
      after: async (decided) => {
        // An approver without an admin role does not read the audit trail; the decision as recorded is shown instead.
        const audited = may('auditor') ? auditLine(await myLatest('approval.decided')) : `Recorded with the reason "${decided.decision_reason}".`;
        await approvalsPage(el('p', { id: 'approval-done', role: 'status' }, `${decided.status} by ${decided.decided_by.sub}. ${audited}`));
        return '';
      },
    }));
    return b;
  });
  return el('span', {}, ...buttons);
}

// ── The token vault: SaaS providers, and the users' grants there ─────────────────────────
async function vaultPage(done) {
  const mineOnly = !may('auditor');
  const [{ providers }, { grants }] = await Promise.all([
    mineOnly ? { providers: [] } : api('/v1/admin/providers'),
    api(mineOnly ? '/v1/vault/grants' : '/v1/admin/grants'),
  ]);
  const panel = el('section', { id: 'grant-panel', class: 'danger', hidden: '' });
  const revoke = (g) => {
    const mine = g.user.sub === session.user && g.user.iss === session.issuer;
    if (!mine && !may('operator')) return '';
    const b = el('button', { type: 'button', class: 'grant-revoke', 'data-grant': g.id }, mine ? 'Unlink…' : 'Revoke…');
    b.addEventListener('click', () => changeForm({
      panel,
      title: `${mine ? 'Unlink' : 'Revoke'} ${g.user.sub}'s grant at ${g.provider}`,
      summary: el('p', {}, 'No task gets a token of it again, and it is revoked at the provider too.'),
      confirmLabel: mine ? 'Unlink' : 'Revoke',
      confirmId: 'confirm-grant',
      question: `${mine ? 'Unlink' : 'Revoke'} the grant at ${g.provider}?`,
      run: (reason) => api(`${mine ? '/v1/vault/grants' : '/v1/admin/grants'}/${g.id}?${new URLSearchParams({ reason })}`, { method: 'DELETE' }),
      after: async () => {
        const line = may('auditor') ? auditLine(await myLatest('grant.revoked')) : `Unlinked (${g.provider}).`;
        await vaultPage(el('p', { id: 'grant-done', role: 'status' }, line));
        return '';
      },
    }));
    return b;
  };
  main.replaceChildren(
    el('h1', {}, mineOnly ? 'Your linked accounts' : 'Token vault'),
    mineOnly ? '' : el('h2', {}, 'Providers'),
    mineOnly ? '' : table(providers, [
      ['Id', (p) => p.id],
      ['Issuer', (p) => p.issuer],
      ['Scopes', (p) => p.scopes.join(' ')],
      ['Class', (p) => p.classification],
      ['Revoked at the provider on', (p) => p.revoke_on.join(', ') || '–'],
    ], { id: 'providers' }),
    el('h2', {}, 'Grants'),
    grants.length === 0 ? el('p', { id: 'no-grants' }, 'No linked accounts.') : table(grants, [
      ['Provider', (g) => g.provider],
      ['User', (g) => `${g.user.sub} (${g.user.iss})`],
      ['Scopes', (g) => g.scopes.join(' ')],
      ['Linked', (g) => g.created_at],
      ['Last used', (g) => g.refreshed_at ?? '–'],
      ['', revoke],
    ], { id: 'grants' }),
    panel,
    ...(done ? [done] : []),
  );
}

// ── Who holds which role ─────────────────────────────────────────────────────────────────
async function rolesPage(done) {
  const { role_bindings: bindings } = await api('/v1/admin/role-bindings');
  const panel = el('section', { id: 'role-panel', class: 'danger', hidden: '' });
  const form = el('form', { id: 'role-form' },
    el('label', {}, 'Role ', el('select', { name: 'role' }, ...Object.keys(RANK).map((r) => el('option', { value: r }, r)))),
    el('label', {}, 'Issuer ', el('input', { name: 'issuer', value: session.issuer, required: '' })),
    el('label', {}, 'Group ', el('input', { name: 'group', placeholder: 'or a subject' })),
    el('label', {}, 'Subject ', el('input', { name: 'subject' })),
    el('button', { type: 'submit' }, 'Bind…'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const f = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ''));
    changeForm({
      panel, title: `Bind ${f.role} to ${f.group ? `group ${f.group}` : `user ${f.subject}`}`, confirmLabel: 'Bind', confirmId: 'confirm-role', question: `Give ${f.role} to ${f.group ?? f.subject}?`,
      run: (reason) => api('/v1/admin/role-bindings', { method: 'POST', body: { ...f, reason } }),
      after: async () => rolesPage(el('p', { id: 'role-done', role: 'status' }, auditLine(await myLatest('role_binding.created')))).then(() => ''),
    });
  });
  main.replaceChildren(
    el('h1', {}, 'Admin roles'),
    el('p', {}, 'auditor: reads everything · operator: also revokes, flips kill switches, denies approvals · admin: everything.'),
    table(bindings, [
      ['Role', (b) => b.role],
      ['Issuer', (b) => b.issuer],
      ['Group or user', (b) => (b.group !== undefined ? `group ${b.group}` : `user ${b.subject}`)],
      ['Made by', (b) => b.created_by],
      ['', (b) => {
        if (!may('admin') || b.id.startsWith('config-')) return b.id.startsWith('config-') ? 'configured' : '';
        const x = el('button', { type: 'button', class: 'role-delete', 'data-binding': b.id }, 'Remove…');
        x.addEventListener('click', () => changeForm({
          panel, title: `Remove ${b.role} from ${b.group ?? b.subject}`, confirmLabel: 'Remove', confirmId: 'confirm-role', question: 'Remove this role binding?',
          run: (reason) => api(`/v1/admin/role-bindings/${b.id}?${new URLSearchParams({ reason })}`, { method: 'DELETE' }),
          after: async () => rolesPage(el('p', { id: 'role-done', role: 'status' }, auditLine(await myLatest('role_binding.deleted')))).then(() => ''),
        }));
        return x;
      }],
    ], { id: 'role-bindings' }),
    may('admin') ? form : '',
    panel,
    ...(done ? [done] : []),
  );
}

const PAGES = { leases: leasesPage, connectors: connectorsPage, policies: policiesPage, approvals: approvalsPage, vault: vaultPage, audit: auditPage, roles: rolesPage };
const DETAIL = { lease: leasePage, connector: connectorPage };

function fail(err) {
  if (err instanceof SessionEnded) return signInPage(`Your session has ended (${err.message}). Sign in again.`).catch(() => undefined);
  main.append(el('p', { role: 'alert', class: 'error' }, err.message));
}

async function route() {
  const [name, ...rest] = location.hash.slice(1).split('/');
  if (DETAIL[name] && rest.length > 0) return DETAIL[name](decodeURIComponent(rest.join('/')));
  await (PAGES[name] ?? leasesPage)();
}

/** Sign-in links: one per identity provider people may sign in at (GET /v1/sign-in). */
async function signInPage(message) {
  session = undefined;
  who.replaceChildren();
  nav.replaceChildren();
  const res = await fetch('/v1/sign-in', { headers: { accept: 'application/json' } });
  const issuers = res.ok ? (await res.json()).issuers : [];
  const links = issuers.length <= 1
    ? [el('a', { href: '/console/login', id: 'sign-in' }, 'Sign in')]
    : issuers.map((iss, i) => el('a', { href: `/console/login?${new URLSearchParams({ issuer: iss })}`, class: 'sign-in', ...(i === 0 && { id: 'sign-in' }) }, `Sign in at ${iss}`));
  main.replaceChildren(el('p', { id: 'signed-out' }, message), el('ul', {}, ...links.map((l) => el('li', {}, l))));
}

async function start() {
  const res = await fetch('/console/api/session', { credentials: 'same-origin' });
  if (res.status === 401) return signInPage('Sign in with your company account to see and end what is live.');
  session = await res.json();
  who.textContent = `${session.user} (${session.role ?? 'no role'})`;
  const out = el('button', { id: 'sign-out', type: 'button' }, 'Sign out');
  out.addEventListener('click', async () => {
    await api('/console/logout', { method: 'POST' }).catch(() => undefined);
    location.assign('/console/');
  });
  who.append(' ', out);
  nav.replaceChildren(...[['leases', 'Leases'], ['connectors', 'Connectors'], ['policies', 'Policies'], ['approvals', 'Approvals'], ['vault', 'Vault'], ['audit', 'Audit'], ['roles', 'Roles']].flatMap(([h, t]) => [el('a', { href: `#${h}` }, t), ' ']));
  if (session.role === undefined) {
    // A person without an admin role sees the approvals they may decide and their own linked accounts, nothing else.
    nav.replaceChildren(el('a', { href: '#approvals' }, 'Approvals'), ' ', el('a', { href: '#vault' }, 'Your accounts'));
    const note = () => el('p', { id: 'no-role' }, `Signed in as ${session.user}, who holds no admin role: only the approvals you may decide, and your own linked accounts, are shown.`);
    const own = { approvals: approvalsPage, vault: vaultPage };
    const show = () => (own[location.hash.slice(1)] ?? approvalsPage)(note()).catch(fail);
    window.addEventListener('hashchange', show);
    await show();
    return;
  }
  window.addEventListener('hashchange', () => route().catch(fail));
  await route();
}

start().catch(fail);
