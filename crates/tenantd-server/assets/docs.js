fetch('/openapi.json').then(r => r.json()).then(doc => {
  const main = document.getElementById('main');
  main.textContent = '';
  const intro = document.createElement('p');
  intro.textContent = (doc.info && doc.info.description) || '';
  main.appendChild(intro);
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || 'other';
      (byTag[tag] = byTag[tag] || []).push({path, method, op});
    }
  }
  for (const tag of Object.keys(byTag).sort()) {
    const h = document.createElement('h2'); h.textContent = tag; main.appendChild(h);
    for (const {path, method, op} of byTag[tag]) {
      const d = document.createElement('details'); d.className = 'op';
      const s = document.createElement('summary');
      const m = document.createElement('span'); m.className = 'm ' + method; m.textContent = method.toUpperCase();
      const p = document.createElement('span'); p.className = 'path'; p.textContent = path;
      const t = document.createElement('span'); t.className = 'sum'; t.textContent = op.summary || op.description || '';
      s.append(m, p, t); d.appendChild(s);
      const b = document.createElement('div'); b.className = 'body';
      const pre = document.createElement('pre');
      pre.textContent = JSON.stringify({parameters: op.parameters, requestBody: op.requestBody, responses: op.responses}, null, 2);
      b.appendChild(pre); d.appendChild(b); main.appendChild(d);
    }
  }
  const h = document.createElement('h2'); h.textContent = 'schemas'; main.appendChild(h);
  const pre = document.createElement('pre'); pre.textContent = JSON.stringify((doc.components || {}).schemas || {}, null, 2);
  main.appendChild(pre);
}).catch(e => { document.getElementById('main').textContent = 'Could not load /openapi.json: ' + e; });
