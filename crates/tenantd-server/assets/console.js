// tenantd console: plain DOM, tokens in sessionStorage, every value rendered as text.
const KINDS = ['agents', 'tools', 'prompts', 'workflows', 'knowledge-sources', 'projects', 'memories'];
let kind = 'agents';
const $ = (id) => document.getElementById(id);

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function say(text, ok) {
  const m = $('msg');
  m.textContent = text;
  m.className = 'msg ' + (ok ? 'ok' : 'err');
}

async function api(method, path, body, extra) {
  const headers = Object.assign({'Accept': 'application/json'}, extra || {});
  const token = sessionStorage.getItem('token');
  if (token) headers['Authorization'] = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (r.status === 401 && path !== '/v1/auth/login') { signOut(); }
  if (!r.ok) {
    const detail = data && data.code ? `${data.code}: ${data.detail || ''}` : `HTTP ${r.status}`;
    const errs = data && Array.isArray(data.errors) ? ' ' + data.errors.map(e => `${e.field} ${e.message}`).join('; ') : '';
    throw new Error(detail + errs);
  }
  return data;
}

function table(id, head, rows) {
  const t = $(id);
  t.textContent = '';
  const tr = el('tr');
  head.forEach(h => tr.appendChild(el('th', h)));
  t.appendChild(tr);
  if (!rows.length) { const r = el('tr'); const td = el('td', 'nothing yet', {class: 'muted', colspan: head.length}); r.appendChild(td); t.appendChild(r); }
  rows.forEach(cells => {
    const r = el('tr');
    cells.forEach(c => { const td = el('td'); if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? '' : String(c); r.appendChild(td); });
    t.appendChild(r);
  });
}

function button(label, onClick, danger) {
  const b = el('button', label, {class: danger ? 'danger' : 'plain', type: 'button'});
  b.addEventListener('click', () => onClick().catch(e => say(e.message)));
  return b;
}

async function loadTenant() {
  const t = await api('GET', '/v1/tenant');
  $('who').textContent = `${t.name} (${t.slug}) · plan ${t.plan} · ${t.status}`;
  const box = $('tenant');
  box.textContent = '';
  [['id', t.id], ['type', t.type], ['cell', t.cell], ['created', t.created_at]].forEach(([k, v]) => {
    const p = el('div'); p.appendChild(el('span', k + ': ', {class: 'muted'})); p.appendChild(el('span', v, {class: 'mono'})); box.appendChild(p);
  });
  const u = await api('GET', `/v1/tenants/${t.id}/usage`);
  table('usage', ['quota', 'used', 'limit', ''], Object.entries(u.quotas).map(([q, v]) => {
    const bar = el('span', null, {class: 'bar'});
    const fill = el('span'); fill.style.width = v.limit ? Math.min(100, 100 * v.used / Math.max(1, v.limit)) + '%' : '0%';
    bar.appendChild(fill);
    return [q, v.used, v.limit === null ? 'unlimited' : v.limit, bar];
  }));
  return t;
}

async function loadResources() {
  const tabs = $('kinds');
  tabs.textContent = '';
  KINDS.forEach(k => { const b = el('button', k, {class: k === kind ? '' : 'plain', type: 'button'}); b.addEventListener('click', () => { kind = k; loadResources().catch(e => say(e.message)); }); tabs.appendChild(b); });
  const page = await api('GET', `/v1/${kind}?limit=100`);
  table('resources', ['name', 'sharing', 'version', 'updated', ''], page.items.map(i => [i.name, i.sharing.mode, i.version, i.updated_at,
    button('Delete', async () => { await api('DELETE', `/v1/${kind}/${i.id}`); say(`Deleted ${i.name}`, true); await refresh(); }, true)]));
}

async function loadMembers() {
  try {
    const m = await api('GET', '/v1/members');
    table('members', ['email', 'name', 'role', ''], m.items.map(x => [x.email, x.name, x.role,
      button('Remove', async () => { await api('DELETE', `/v1/members/${x.user_id}`); say(`Removed ${x.email}`, true); await refresh(); }, true)]));
  } catch (e) { table('members', ['members'], [[e.message]]); }
}

async function loadKeys() {
  try {
    const k = await api('GET', '/v1/api-keys');
    table('keys', ['name', 'prefix', 'role', 'state', ''], k.items.map(x => [x.name, x.prefix, x.role, x.revoked_at ? 'revoked' : 'live',
      x.revoked_at ? '' : button('Revoke', async () => { await api('DELETE', `/v1/api-keys/${x.id}`); say(`Revoked ${x.name}`, true); await loadKeys(); }, true)]));
  } catch (e) { table('keys', ['API keys'], [[e.message]]); }
}

async function loadAudit() {
  try {
    const a = await api('GET', '/v1/audit?limit=200');
    table('audit', ['seq', 'at', 'actor', 'action', 'outcome', 'resource'], a.items.slice(-50).reverse().map(e => [e.seq, e.at, e.actor, e.action, e.outcome, e.resource_id || e.resource]));
  } catch (e) { table('audit', ['audit'], [[e.message]]); }
}

async function loadPlatform(t) {
  if (t.type !== 'platform') return;
  try {
    const list = await api('GET', '/v1/tenants?limit=200');
    $('platform').classList.remove('hidden');
    table('tenants', ['slug', 'name', 'plan', 'status', ''], list.items.map(x => [x.slug, x.name, x.plan, x.status,
      x.type === 'platform' ? '' : (x.status === 'suspended'
        ? button('Reactivate', async () => { await api('POST', `/v1/tenants/${x.id}/reactivate`); say(`Reactivated ${x.slug}`, true); await loadPlatform(t); })
        : button('Suspend', async () => { await api('POST', `/v1/tenants/${x.id}/suspend`, {reason: 'console'}); say(`Suspended ${x.slug}`, true); await loadPlatform(t); }, true))]));
  } catch (_) { /* not a platform admin */ }
}

async function refresh() {
  const t = await loadTenant();
  await Promise.all([loadResources(), loadMembers(), loadKeys(), loadAudit(), loadPlatform(t)]);
}

function signOut() {
  sessionStorage.removeItem('token');
  $('app').classList.add('hidden');
  $('login').classList.remove('hidden');
  $('logout').classList.add('hidden');
  $('who').textContent = '';
}

async function start() {
  $('login').classList.add('hidden');
  $('app').classList.remove('hidden');
  $('logout').classList.remove('hidden');
  await refresh();
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = {email: f.get('email'), password: f.get('password')};
  if (f.get('tenant')) body.tenant = f.get('tenant');
  try {
    const r = await api('POST', '/v1/auth/login', body);
    sessionStorage.setItem('token', r.access_token);
    say(`Signed in to ${r.tenant.name}`, true);
    await start();
  } catch (e) { say(e.message); }
});

$('logout').addEventListener('click', async () => { try { await api('POST', '/v1/auth/logout'); } catch (_) {} signOut(); say('Signed out', true); });

$('create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  let spec = {};
  try { spec = f.get('spec') ? JSON.parse(f.get('spec')) : {}; } catch (_) { say('spec must be JSON'); return; }
  try { await api('POST', `/v1/${kind}`, {name: f.get('name'), spec}); ev.target.reset(); say(`Created ${f.get('name')}`, true); await refresh(); } catch (e) { say(e.message); }
});

$('invite-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try { const r = await api('POST', '/v1/invitations', {email: f.get('email'), role: f.get('role')}); say(`Invitation token (shown once): ${r.token}`, true); await refresh(); } catch (e) { say(e.message); }
});

$('key-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try { const r = await api('POST', '/v1/api-keys', {name: f.get('name'), role: f.get('role')}); say(`API key (shown once): ${r.key}`, true); await loadKeys(); } catch (e) { say(e.message); }
});

$('password-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try { await api('POST', '/v1/auth/password', {current_password: f.get('current_password'), new_password: f.get('new_password')}); ev.target.reset(); say('Password changed; your other sessions ended', true); } catch (e) { say(e.message); }
});

$('verify').addEventListener('click', async () => {
  try { const v = await api('GET', '/v1/audit/verify'); $('verify-out').textContent = v.ok ? `ok — ${v.events} events, head ${v.head.slice(0, 12)}…` : `BROKEN at seq ${v.first_bad_seq}`; } catch (e) { $('verify-out').textContent = e.message; }
});

if (sessionStorage.getItem('token')) start().catch(e => { say(e.message); signOut(); });
