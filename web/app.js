// Herald's dashboard: one hand-written script, no build step, no dependencies.
//
// It reads the same JSON API as any client, with the token and org the user signed in with
// (kept in sessionStorage, so they end with the tab). Every value from the API reaches the page
// through textContent or setAttribute, never as HTML, and the page's Content-Security-Policy
// allows this file as the only script. Charts are inline SVG drawn from the API's own series.
'use strict';

(() => {
  const main = document.getElementById('main');
  const SVG = 'http://www.w3.org/2000/svg';

  // ---- session --------------------------------------------------------------------------------

  const session = {
    get token() {
      return sessionStorage.getItem('herald.token') || '';
    },
    get org() {
      return sessionStorage.getItem('herald.org') || '';
    },
    set(token, org) {
      sessionStorage.setItem('herald.token', token);
      sessionStorage.setItem('herald.org', org);
    },
    clear() {
      sessionStorage.removeItem('herald.token');
      sessionStorage.removeItem('herald.org');
    },
  };

  // ---- DOM helpers: text only, never HTML -----------------------------------------------------

  function add(node, kids) {
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }

  function attrs(node, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        node.addEventListener(key.slice(2), value);
      } else {
        node.setAttribute(key, value === true ? '' : String(value));
      }
    }
    return node;
  }

  function h(tag, props, ...kids) {
    return add(attrs(document.createElement(tag), props), kids);
  }

  function s(tag, props, ...kids) {
    return add(attrs(document.createElementNS(SVG, tag), props), kids);
  }

  function show(...nodes) {
    main.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
  }

  // ---- formatting -----------------------------------------------------------------------------

  const int = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));
  const money = (n) =>
    Number(n || 0).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const rate = (r) => (r === null || r === undefined ? '–' : (Number(r) * 100).toFixed(1) + '%');

  function when(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return h('time', { datetime: iso, title: iso }, d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC');
  }

  function ago(iso) {
    if (!iso) return 'never';
    const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (seconds < 60) return `${Math.max(seconds, 0)} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    return `${Math.round(seconds / 3600)} h ago`;
  }

  function blockerText(b) {
    switch (b.code) {
      case 'channel_not_connected':
        return `${b.channel} is not connected`;
      case 'template_missing':
        return 'no template';
      case 'audience_missing':
        return 'no audience';
      default:
        return [b.channel, b.code].filter(Boolean).join(': ');
    }
  }

  const badge = (text, kind) => h('span', { class: `badge ${kind || text}` }, text);

  function statusBadge(c) {
    return [badge(c.status), c.state === 'deleted' ? badge('deleted') : null];
  }

  // ---- the API --------------------------------------------------------------------------------

  class Problem extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  class SignedOut extends Error {}

  async function api(method, path, body) {
    const headers = {
      Accept: 'application/json',
      Authorization: `Bearer ${session.token}`,
      orgid: session.org,
    };
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new Problem(0, { title: 'The server cannot be reached', detail: String(error.message || error) });
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = { title: text.slice(0, 200) };
      }
    }
    if (response.status === 401) {
      signIn('Your token was refused: it has expired or is not valid here. Sign in again.');
      throw new SignedOut();
    }
    if (!response.ok) throw new Problem(response.status, data || { title: response.statusText });
    return data;
  }

  // A problem detail as the API sent it: title, detail, field errors and blockers.
  function problemBox(error) {
    if (!(error instanceof Problem)) {
      return h('div', { class: 'problem', role: 'alert' }, h('strong', {}, 'Something went wrong'), ' ', String(error));
    }
    const body = error.body;
    const items = [];
    for (const e of body.errors || []) items.push(h('li', {}, e.field ? h('code', {}, e.field) : null, ' ', e.message));
    for (const b of body.blockers || []) items.push(h('li', {}, blockerText(b)));
    return h(
      'div',
      { class: 'problem', role: 'alert', 'data-status': error.status },
      h('strong', {}, body.title || `HTTP ${error.status}`),
      error.status ? h('span', { class: 'muted' }, ` (${error.status})`) : null,
      body.detail ? h('p', { class: 'detail' }, body.detail) : null,
      items.length ? h('ul', {}, items) : null,
    );
  }

  // ---- charts (inline SVG) --------------------------------------------------------------------

  const SERIES = [
    { key: 'sends', label: 'Sends', cls: 's1' },
    { key: 'opens', label: 'Opens', cls: 's2' },
    { key: 'clicks', label: 'Clicks', cls: 's3' },
    { key: 'conversions', label: 'Conversions', cls: 's4' },
  ];

  function legend(keys) {
    return h('ul', { class: 'legend' }, keys.map((k) => h('li', { class: k.cls }, k.label)));
  }

  // The top of an axis with four whole-number steps: 4, 8, 20, 40, 80, 100, 200, …
  function niceMax(max) {
    const wanted = Math.max(max, 1) / 4;
    const magnitude = 10 ** Math.floor(Math.log10(wanted));
    for (const step of [1, 2, 2.5, 5, 10]) {
      const size = step * magnitude;
      if (size >= wanted && Number.isInteger(size)) return size * 4;
    }
    return Math.ceil(wanted) * 4;
  }

  // A line per metric over the days of `series` ([{date, sends, opens, …}]).
  function lineChart(series, keys, label) {
    const W = 760;
    const H = 220;
    const left = 48;
    const right = 24;
    const top = 12;
    const bottom = 26;
    const max = niceMax(Math.max(0, ...series.flatMap((d) => keys.map((k) => Number(d[k.key] || 0)))));
    const x = (i) => left + (series.length > 1 ? (i * (W - left - right)) / (series.length - 1) : (W - left - right) / 2);
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const v = max * f;
      return [
        s('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), class: 'grid' }),
        s('text', { x: left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, int(Math.round(v))),
      ];
    });
    const ticks = [0, Math.floor((series.length - 1) / 2), series.length - 1]
      .filter((i, n, all) => i >= 0 && all.indexOf(i) === n)
      .map((i) =>
        s('text', { x: x(i), y: H - 8, class: 'axis', 'text-anchor': 'middle' }, String(series[i].date || '').slice(5)),
      );
    const lines = keys.map((k) =>
      s(
        'g',
        { class: k.cls },
        s('polyline', {
          points: series.map((d, i) => `${x(i).toFixed(1)},${y(Number(d[k.key] || 0)).toFixed(1)}`).join(' '),
          class: 'line',
        }),
        series.map((d, i) =>
          s(
            'circle',
            { cx: x(i).toFixed(1), cy: y(Number(d[k.key] || 0)).toFixed(1), r: 2.5, class: 'dot' },
            s('title', {}, `${d.date} ${k.label}: ${int(d[k.key] || 0)}`),
          ),
        ),
      ),
    );
    return h(
      'figure',
      { class: 'chart' },
      s(
        'svg',
        { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'xMidYMid meet' },
        s('title', {}, label),
        grid,
        ticks,
        lines,
      ),
      legend(keys),
    );
  }

  // Grouped horizontal bars: one group per channel, one bar per metric.
  function channelChart(channels, label) {
    const keys = [
      { key: 'sends', label: 'Sends', cls: 's1' },
      { key: 'deliveries', label: 'Deliveries', cls: 's5' },
      { key: 'opens', label: 'Opens', cls: 's2' },
      { key: 'clicks', label: 'Clicks', cls: 's3' },
      { key: 'conversions', label: 'Conversions', cls: 's4' },
    ];
    const names = Object.keys(channels || {});
    if (!names.length) return h('p', { class: 'muted' }, 'No channels.');
    const W = 760;
    const left = 110;
    const bar = 9;
    const group = keys.length * bar + 14;
    const H = names.length * group + 8;
    const max = niceMax(Math.max(0, ...names.flatMap((n) => keys.map((k) => Number(channels[n][k.key] || 0)))));
    const width = (v) => ((W - left - 70) * v) / max;
    const groups = names.map((name, g) => {
      const y0 = 4 + g * group;
      return s(
        'g',
        { 'data-channel': name },
        s('text', { x: left - 8, y: y0 + (keys.length * bar) / 2 + 4, class: 'axis', 'text-anchor': 'end' }, name),
        keys.map((k, i) => {
          const v = Number(channels[name][k.key] || 0);
          return s(
            'g',
            { class: k.cls },
            s('rect', { x: left, y: y0 + i * bar, width: Math.max(width(v), v > 0 ? 1 : 0).toFixed(1), height: bar - 2, class: 'bar' }, s('title', {}, `${name} ${k.label}: ${int(v)}`)),
            s('text', { x: left + width(v) + 4, y: y0 + i * bar + bar - 2, class: 'value' }, int(v)),
          );
        }),
      );
    });
    return h(
      'figure',
      { class: 'chart' },
      s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label }, s('title', {}, label), groups),
      legend(keys),
    );
  }

  // ---- small building blocks ------------------------------------------------------------------

  function tiles(values, list) {
    return h(
      'div',
      { class: 'tiles' },
      list.map(([key, label, format]) =>
        h('div', { class: 'tile', 'data-tile': key }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, format(values[key]))),
      ),
    );
  }

  const NUMERIC = new Set(['Sends', 'Deliveries', 'Opens', 'Clicks', 'Conversions', 'Revenue', 'Reach now', 'Position', 'Lag (events)', 'Failures in a row', '#']);

  function table(head, rows, props) {
    return h(
      'table',
      props || {},
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { class: NUMERIC.has(c) ? 'num' : null }, c)))),
      h('tbody', {}, rows),
    );
  }

  function dl(pairs) {
    return h(
      'dl',
      { class: 'facts' },
      pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? '–' : v)]),
    );
  }

  const campaignLink = (id, name) => h('a', { href: `#/campaigns/${encodeURIComponent(id)}` }, name || id);

  function today(offsetDays) {
    const d = new Date(Date.now() - (offsetDays || 0) * 86400000);
    return d.toISOString().slice(0, 10);
  }

  function query(hash) {
    const at = hash.indexOf('?');
    return new URLSearchParams(at < 0 ? '' : hash.slice(at + 1));
  }

  // ---- pages ----------------------------------------------------------------------------------

  let seq = 0; // the current render; an older one that finishes late writes nothing
  let timer = null;

  const TILES = [
    ['activeCampaigns', 'Active campaigns', int],
    ['scheduledCampaigns', 'Scheduled', int],
    ['sends', 'Sends', int],
    ['opens', 'Opens', int],
    ['clicks', 'Clicks', int],
    ['conversions', 'Conversions', int],
    ['revenue', 'Revenue', money],
    ['openRate', 'Open rate', rate],
    ['clickRate', 'Click rate', rate],
  ];

  async function dashboardPage(mine) {
    const d = await api('GET', '/crm/marketing/dashboard?days=30');
    if (mine !== seq) return;
    const top = (d.topCampaigns || []).map((c) =>
      h(
        'tr',
        { 'data-campaign': c.campaignId },
        h('td', {}, campaignLink(c.campaignId, c.name), c.deleted ? [' ', badge('deleted')] : null),
        h('td', {}, badge(c.status || '–')),
        h('td', { class: 'num' }, int(c.sends)),
        h('td', { class: 'num' }, int(c.opens)),
        h('td', { class: 'num' }, int(c.clicks)),
        h('td', { class: 'num' }, int(c.conversions)),
        h('td', { class: 'num' }, money(c.revenue)),
      ),
    );
    show(
      h('h1', {}, 'Last 30 days'),
      h('p', { class: 'muted' }, `${d.range.from} to ${d.range.to} (UTC days)`),
      tiles(d.tiles, TILES),
      h('h2', {}, 'Daily'),
      lineChart(d.series || [], SERIES, 'Sends, opens, clicks and conversions per day'),
      h('h2', {}, 'Top campaigns'),
      top.length
        ? table(['Campaign', 'Status', 'Sends', 'Opens', 'Clicks', 'Conversions', 'Revenue'], top, { id: 'top-campaigns' })
        : h('p', { class: 'muted' }, 'No campaign has numbers in this range yet.'),
    );
  }

  const STATUSES = ['draft', 'scheduled', 'running', 'paused', 'completed'];

  async function campaignsPage(mine, params) {
    const types = await api('GET', '/crm/marketing/campaign-types').catch(() => []);
    if (mine !== seq) return;
    const status = params.get('status') || '';
    const type = params.get('type') || '';
    const deleted = params.get('includeDeleted') === 'true';
    const go = (changes) => {
      const next = new URLSearchParams({ status, type, includeDeleted: deleted ? 'true' : '' });
      for (const [k, v] of Object.entries(changes)) next.set(k, v);
      for (const k of [...next.keys()]) if (!next.get(k)) next.delete(k);
      const q = next.toString();
      location.hash = `#/campaigns${q ? `?${q}` : ''}`;
    };
    const filters = h(
      'form',
      { class: 'filters', onsubmit: (e) => e.preventDefault() },
      h(
        'label',
        {},
        'Status ',
        h(
          'select',
          { name: 'status', onchange: (e) => go({ status: e.target.value }) },
          h('option', { value: '' }, 'any'),
          STATUSES.map((v) => h('option', { value: v, selected: v === status }, v)),
        ),
      ),
      h(
        'label',
        {},
        'Type ',
        h(
          'select',
          { name: 'type', onchange: (e) => go({ type: e.target.value }) },
          h('option', { value: '' }, 'any'),
          (types || []).map((t) => h('option', { value: t.id, selected: t.id === type }, t.name || t.id)),
        ),
      ),
      h(
        'label',
        {},
        h('input', { type: 'checkbox', name: 'includeDeleted', checked: deleted, onchange: (e) => go({ includeDeleted: e.target.checked ? 'true' : '' }) }),
        ' show deleted',
      ),
    );
    const tbody = h('tbody', {});
    const more = h('div', { class: 'more' });
    const count = h('p', { class: 'muted' });
    let shown = 0;
    show(
      h('h1', {}, 'Campaigns'),
      filters,
      count,
      h(
        'table',
        { id: 'campaigns' },
        h(
          'thead',
          {},
          h('tr', {}, ['Campaign', 'Type', 'Status', 'Channels', 'Blockers', 'Next run', 'Sends', 'Opens', 'Clicks'].map((c) => h('th', { class: NUMERIC.has(c) ? 'num' : null }, c))),
        ),
        tbody,
      ),
      more,
    );
    const load = async (cursor) => {
      const q = new URLSearchParams({ limit: '50' });
      if (status) q.set('status', status);
      if (type) q.set('type', type);
      if (deleted) q.set('includeDeleted', 'true');
      if (cursor) q.set('cursor', cursor);
      const page = await api('GET', `/crm/marketing/campaigns?${q}`);
      if (mine !== seq) return;
      const ids = page.items.map((c) => c.id);
      // Sends, opens and clicks over the last year (the longest range one request may ask for).
      const numbers = ids.length
        ? await api('POST', '/crm/marketing/campaigns/aggregated-metrics', {
            campaignIds: ids,
            range: { start: today(365), end: today(0) },
          })
        : { campaigns: {} };
      if (mine !== seq) return;
      for (const c of page.items) {
        const m = numbers.campaigns[c.id] || {};
        tbody.append(
          h(
            'tr',
            { 'data-campaign': c.id },
            h('td', {}, campaignLink(c.id, c.name)),
            h('td', {}, c.type),
            h('td', {}, statusBadge(c)),
            h('td', {}, (c.channels || []).join(', ')),
            h('td', { class: 'blockers' }, (c.blockers || []).map(blockerText).join('; ') || '–'),
            h('td', {}, when(c.nextRunAt)),
            h('td', { class: 'num' }, int(m.sends)),
            h('td', { class: 'num' }, int(m.opens)),
            h('td', { class: 'num' }, int(m.clicks)),
          ),
        );
      }
      shown += page.items.length;
      count.textContent = `${shown} campaign${shown === 1 ? '' : 's'} shown; sends, opens and clicks over the last 12 months.`;
      more.replaceChildren(
        page.nextCursor ? h('button', { type: 'button', onclick: () => load(page.nextCursor).catch(report) }, 'Load more') : '',
      );
    };
    await load(null);
  }

  const ACTIONS = {
    draft: ['launch'],
    scheduled: ['launch'],
    running: ['pause', 'complete'],
    paused: ['resume', 'complete'],
    completed: [],
  };

  async function campaignPage(mine, id, notice) {
    const path = `/crm/marketing/campaigns/${encodeURIComponent(id)}`;
    let c;
    try {
      c = await api('GET', path);
    } catch (error) {
      if (error instanceof Problem && error.status === 404) {
        if (mine === seq) show(h('h1', {}, 'Campaign not found'), problemBox(error), h('p', {}, h('a', { href: '#/campaigns' }, 'All campaigns')));
        return;
      }
      throw error;
    }
    const [analytics, daily] = await Promise.all([
      api('GET', `${path}/analytics`),
      api('POST', '/crm/marketing/campaigns/aggregated-metrics', { campaignIds: [id], range: { start: today(29), end: today(0) } }),
    ]);
    if (mine !== seq) return;
    const actionArea = h('div', { class: 'actions', id: 'actions' });
    const outcome = h('div', { id: 'outcome' }, notice ? h('p', { class: 'notice', role: 'status' }, notice) : null);
    const act = async (button, action) => {
      button.disabled = true;
      outcome.replaceChildren();
      try {
        if (action === 'delete') await api('DELETE', path);
        else await api('POST', `${path}/${action}`);
        seq += 1;
        await campaignPage(seq, id, `${action[0].toUpperCase()}${action.slice(1)}: done.`);
      } catch (error) {
        if (error instanceof SignedOut) return;
        button.disabled = false;
        outcome.replaceChildren(problemBox(error));
      }
    };
    if (c.state !== 'deleted') {
      for (const action of ACTIONS[c.status] || []) {
        const b = h('button', { type: 'button', 'data-action': action }, action);
        b.addEventListener('click', () => act(b, action));
        actionArea.append(b);
      }
      const del = h('button', { type: 'button', class: 'danger', 'data-action': 'delete' }, 'delete');
      del.addEventListener('click', () => {
        const yes = h('button', { type: 'button', class: 'danger', 'data-action': 'confirm-delete' }, 'Yes, delete');
        const no = h('button', { type: 'button' }, 'Keep it');
        const ask = h('span', { class: 'confirm' }, 'Delete this campaign? ', yes, ' ', no);
        yes.addEventListener('click', () => act(yes, 'delete'));
        no.addEventListener('click', () => ask.replaceWith(del));
        del.replaceWith(ask);
      });
      actionArea.append(del);
    }
    const run = c.lastRun;
    const steps = c.steps || [];
    const stepNumbers = analytics.steps || {};
    const enrollments = analytics.enrollments;
    const eventsBody = h('tbody', {});
    const eventsMore = h('div', { class: 'more' });
    show(
      h('p', { class: 'crumbs' }, h('a', { href: '#/campaigns' }, 'Campaigns'), ' / ', c.id),
      h('h1', {}, c.name, ' ', statusBadge(c)),
      actionArea,
      outcome,
      dl([
        ['Id', h('code', {}, c.id)],
        ['Type', c.type],
        ['Channels', (c.channels || []).join(', ')],
        ['Blockers', (c.blockers || []).length ? h('ul', { class: 'blockers' }, c.blockers.map((b) => h('li', {}, blockerText(b)))) : 'none'],
        ['Audience', c.audienceId ? c.audienceId : c.audience ? 'inline filter' : null],
        ['Template', c.templateId],
        ['Start', when(c.schedule && c.schedule.startAt)],
        ['End', when(c.schedule && c.schedule.endAt)],
        ['Time zone', c.schedule && c.schedule.timezone],
        c.recurring ? ['Repeats', h('code', {}, c.recurring.cron)] : null,
        ['Next run', when(c.nextRunAt)],
        ['Launched', when(c.launchedAt)],
        ['Completed', when(c.completedAt)],
        c.deletedAt ? ['Deleted', when(c.deletedAt)] : null,
        ['Created', [when(c.createdAt), ' by ', c.createdBy]],
        ['Updated', [when(c.updatedAt), ' by ', c.updatedBy]],
        ['Version', String(c.version)],
      ]),
      h('h2', {}, 'Last run'),
      run
        ? dl([
            ['Run', h('code', {}, run.runId)],
            ['At', when(run.at)],
            ['Reach', h('span', { id: 'reach' }, int(run.reach))],
            ['Channels', (run.channels || []).join(', ')],
            ['Skipped', (run.skipped || []).map(blockerText).join('; ') || 'none'],
          ])
        : h('p', { class: 'muted' }, 'Not run yet.'),
      h('h2', {}, 'Analytics (all time)'),
      tiles(analytics.totals || {}, [
        ['sends', 'Sends', int],
        ['deliveries', 'Deliveries', int],
        ['opens', 'Opens', int],
        ['clicks', 'Clicks', int],
        ['conversions', 'Conversions', int],
        ['revenue', 'Revenue', money],
        ['openRate', 'Open rate', rate],
        ['clickRate', 'Click rate', rate],
      ]),
      h('h3', {}, 'Per channel'),
      channelChart(analytics.channels, 'Sends, deliveries, opens, clicks and conversions per channel'),
      h('h3', {}, 'Last 30 days'),
      lineChart(daily.series || [], SERIES, 'This campaign per day'),
      steps.length
        ? [
            h('h2', {}, 'Steps'),
            enrollments
              ? h(
                  'p',
                  { id: 'enrollments' },
                  `Enrollments: ${int(enrollments.active)} active, ${int(enrollments.completed)} completed, ${int(enrollments.exited)} exited.`,
                )
              : null,
            table(
              ['Step', 'Delay', 'At', 'Condition', 'Sends', 'Deliveries', 'Opens', 'Clicks', 'Conversions'],
              steps.map((st) => {
                const m = stepNumbers[st.id] || {};
                return h(
                  'tr',
                  { 'data-step': st.id },
                  h('td', {}, h('code', {}, st.id)),
                  h('td', {}, st.delay || '–'),
                  h('td', {}, st.at || '–'),
                  h('td', {}, st.when ? JSON.stringify(st.when) : '–'),
                  h('td', { class: 'num' }, int(m.sends || 0)),
                  h('td', { class: 'num' }, int(m.deliveries || 0)),
                  h('td', { class: 'num' }, int(m.opens || 0)),
                  h('td', { class: 'num' }, int(m.clicks || 0)),
                  h('td', { class: 'num' }, int(m.conversions || 0)),
                );
              }),
              { id: 'steps' },
            ),
          ]
        : null,
      h('h2', {}, 'Audit trail'),
      h(
        'table',
        { id: 'events' },
        h('thead', {}, h('tr', {}, ['#', 'When', 'Event', 'Who', 'What'].map((x) => h('th', { class: NUMERIC.has(x) ? 'num' : null }, x)))),
        eventsBody,
      ),
      eventsMore,
    );
    const loadEvents = async (cursor) => {
      const q = new URLSearchParams({ limit: '100' });
      if (cursor) q.set('cursor', cursor);
      const page = await api('GET', `${path}/events?${q}`);
      if (mine !== seq) return;
      for (const e of page.items) {
        const data = JSON.stringify(e.data);
        eventsBody.append(
          h(
            'tr',
            { 'data-event-type': e.eventType },
            h('td', { class: 'num' }, String(e.revision)),
            h('td', {}, when(e.created)),
            h('td', {}, h('strong', {}, e.eventType)),
            h('td', {}, (e.metadata && e.metadata.actor) || '–'),
            h(
              'td',
              { class: 'data' },
              data.length > 120 ? h('details', {}, h('summary', {}, `${data.slice(0, 110)}…`), h('pre', {}, JSON.stringify(e.data, null, 2))) : h('code', {}, data),
            ),
          ),
        );
      }
      eventsMore.replaceChildren(
        page.nextCursor ? h('button', { type: 'button', onclick: () => loadEvents(page.nextCursor).catch(report) }, 'Older events') : '',
      );
    };
    await loadEvents(null);
  }

  async function audiencesPage(mine) {
    const list = await api('GET', '/crm/audiences?limit=100');
    if (mine !== seq) return;
    const editor = h('textarea', { id: 'filter', rows: 8, spellcheck: 'false', 'aria-label': 'Filter (DynamicQuery JSON)' });
    editor.value = JSON.stringify({ datatype: 'contact', where: {} }, null, 2);
    const result = h('div', { id: 'preview', 'aria-live': 'polite' });
    let pending = null;
    let asked = 0;
    const preview = async () => {
      const mineToo = ++asked;
      let filter;
      try {
        filter = JSON.parse(editor.value);
      } catch (error) {
        result.replaceChildren(h('p', { class: 'problem' }, `Not JSON yet: ${error.message}`));
        return;
      }
      try {
        const r = await api('POST', '/crm/audiences/preview', { filter });
        if (mineToo !== asked) return;
        result.replaceChildren(
          h('p', {}, h('strong', { id: 'preview-count' }, int(r.count)), ` contact${r.count === 1 ? '' : 's'} match now.`),
          (r.sample || []).length
            ? h('ul', { class: 'sample' }, r.sample.map((ct) => h('li', {}, [ct.firstName, ct.lastName].filter(Boolean).join(' ') || ct.id, ct.email ? ` <${ct.email}>` : '')))
            : null,
        );
      } catch (error) {
        if (error instanceof SignedOut || mineToo !== asked) return;
        result.replaceChildren(problemBox(error));
      }
    };
    editor.addEventListener('input', () => {
      clearTimeout(pending);
      pending = setTimeout(preview, 300);
    });
    const rows = list.items.map((a) => {
      const reach = h('td', { class: 'num reach' }, '…');
      api('GET', `/crm/audiences/${encodeURIComponent(a.id)}/reach`)
        .then((r) => {
          reach.textContent = int(r.count);
        })
        .catch((error) => {
          if (!(error instanceof SignedOut)) reach.textContent = 'error';
        });
      const use = h('button', { type: 'button', class: 'link' }, 'Edit in preview');
      use.addEventListener('click', () => {
        editor.value = JSON.stringify(a.filter, null, 2);
        preview();
        editor.focus();
      });
      return h(
        'tr',
        { 'data-audience': a.id },
        h('td', {}, a.name, h('div', { class: 'muted' }, h('code', {}, a.id))),
        h('td', { class: 'data' }, h('code', {}, JSON.stringify(a.filter && a.filter.where))),
        reach,
        h('td', {}, use),
      );
    });
    show(
      h('h1', {}, 'Audiences'),
      rows.length ? table(['Audience', 'Filter', 'Reach now', ''], rows, { id: 'audiences' }) : h('p', { class: 'muted' }, 'No audiences yet.'),
      h('h2', {}, 'Reach preview'),
      h('p', { class: 'muted' }, 'Type a filter (', h('code', {}, 'docs/dynamic-query.md'), '); the count follows as you type. Nothing is saved.'),
      editor,
      result,
    );
    preview();
  }

  async function healthPage(mine) {
    const d = await api('GET', '/crm/marketing/health');
    if (mine !== seq) return;
    const sched = d.scheduler || {};
    const queue = d.queue || {};
    const channels = Object.entries(d.channels || {});
    const projections = Object.entries(d.projections || {});
    show(
      h('h1', {}, 'Health ', badge(d.status, d.status === 'ok' ? 'ok' : 'bad')),
      h('h2', {}, 'Scheduler'),
      dl([
        ['Heartbeat', sched.heartbeatAt ? [when(sched.heartbeatAt), ` (${ago(sched.heartbeatAt)})`] : 'none'],
        ['Send slots', int(sched.workers)],
        ['Processes', int(sched.nodes)],
      ]),
      h('h2', {}, 'Queue'),
      tiles(queue, [
        ['depth', 'Depth', int],
        ['scheduled', 'Scheduled', int],
        ['running', 'Running', int],
        ['failed', 'Failed', int],
        ...('steps' in queue ? [['steps', 'Drip steps waiting', int]] : []),
      ]),
      h('h2', {}, 'Channels'),
      channels.length
        ? table(
            ['Channel', 'Last success', 'Last failure', 'Failures in a row', ''],
            channels.map(([name, c]) =>
              h(
                'tr',
                { 'data-channel': name },
                h('td', {}, name),
                h('td', {}, when(c.lastSuccessAt)),
                h('td', {}, when(c.lastFailureAt)),
                h('td', { class: 'num' }, int(c.consecutiveFailures || 0)),
                h('td', {}, c.failing ? badge('failing', 'bad') : badge('ok')),
              ),
            ),
            { id: 'channels' },
          )
        : h('p', { class: 'muted' }, 'Nothing sent yet.'),
      h('h2', {}, 'Projections'),
      table(
        ['Read model', 'Position', 'Lag (events)', 'Mode'],
        projections.map(([name, p]) =>
          h('tr', { 'data-projection': name }, h('td', {}, name), h('td', { class: 'num' }, int(p.position)), h('td', { class: 'num' }, int(p.lag)), h('td', {}, p.mode || 'follower')),
        ),
        { id: 'projections' },
      ),
      h('p', { class: 'muted' }, 'Refreshes every 5 seconds.'),
    );
    timer = setTimeout(() => {
      if (mine === seq) route();
    }, 5000);
  }

  // ---- sign-in --------------------------------------------------------------------------------

  function signIn(reason, problem) {
    seq += 1;
    clearTimeout(timer);
    session.clear();
    chrome();
    const token = h('textarea', { name: 'token', id: 'token', rows: 4, required: true, spellcheck: 'false', autocomplete: 'off' });
    const org = h('input', { name: 'org', id: 'org', required: true, autocomplete: 'off', value: localStorage.getItem('herald.lastOrg') || '' });
    const message = h('div', { id: 'signin-message' }, reason ? h('p', { class: 'notice', role: 'status' }, reason) : null, problem ? problemBox(problem) : null);
    const form = h(
      'form',
      { id: 'signin', class: 'signin' },
      h('label', { for: 'token' }, 'Token'),
      token,
      h('label', { for: 'org' }, 'Org'),
      org,
      h('button', { type: 'submit' }, 'Sign in'),
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const t = token.value.trim().replace(/^Bearer\s+/i, '');
      const o = org.value.trim();
      session.set(t, o);
      try {
        // Any read tells whether the token is good for this org.
        await api('GET', '/crm/marketing/health');
      } catch (error) {
        if (error instanceof SignedOut) return;
        session.clear();
        message.replaceChildren(problemBox(error));
        return;
      }
      localStorage.setItem('herald.lastOrg', o);
      if (!location.hash.startsWith('#/')) location.hash = '#/';
      else route();
    });
    show(
      h('h1', {}, 'Sign in'),
      message,
      h('p', {}, 'Paste a bearer token and the org it acts for. The dashboard reads the same API as any client, with this token.'),
      form,
      h(
        'p',
        { class: 'muted' },
        'Mint a token with ',
        h('code', {}, 'herald token --org demo --role admin'),
        '. On a local start with generated secrets, the server log prints a one-time sign-in link.',
      ),
    );
  }

  // `#signin=<code>`: exchange the one-time code for a token, then drop it from the address.
  async function redeem(code) {
    history.replaceState(null, '', location.pathname + location.search);
    let response;
    let body = null;
    try {
      response = await fetch('/dashboard/signin', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ code }),
        cache: 'no-store',
        credentials: 'omit',
      });
      body = await response.json().catch(() => null);
    } catch (error) {
      signIn(null, new Problem(0, { title: 'The server cannot be reached', detail: String(error.message || error) }));
      return;
    }
    if (!response.ok) {
      signIn('That sign-in link did not work (it works once, for a few minutes).', new Problem(response.status, body));
      return;
    }
    session.set(body.token, body.orgId);
    localStorage.setItem('herald.lastOrg', body.orgId);
    location.hash = '#/';
  }

  // ---- frame and router -----------------------------------------------------------------------

  function chrome() {
    const signedIn = Boolean(session.token);
    document.getElementById('nav').hidden = !signedIn;
    document.getElementById('who').hidden = !signedIn;
    document.getElementById('who-org').textContent = signedIn ? `org ${session.org}` : '';
    const page = (location.hash.split('?')[0].split('/')[1] || 'dashboard').replace(/^$/, 'dashboard');
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.nav === page) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  function report(error) {
    if (error instanceof SignedOut) return;
    main.append(problemBox(error));
  }

  async function route() {
    clearTimeout(timer);
    const hash = location.hash || '#/';
    if (hash.startsWith('#signin=')) {
      await redeem(decodeURIComponent(hash.slice('#signin='.length)));
      return;
    }
    if (!session.token) {
      signIn(null);
      return;
    }
    chrome();
    const mine = ++seq;
    const path = hash.slice(1).split('?')[0];
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    try {
      if (parts.length === 0) await dashboardPage(mine);
      else if (parts[0] === 'campaigns' && parts.length === 1) await campaignsPage(mine, query(hash));
      else if (parts[0] === 'campaigns' && parts.length === 2) await campaignPage(mine, parts[1]);
      else if (parts[0] === 'audiences') await audiencesPage(mine);
      else if (parts[0] === 'health') await healthPage(mine);
      else show(h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Back to the dashboard')));
    } catch (error) {
      if (error instanceof SignedOut || mine !== seq) return;
      show(h('h1', {}, 'Could not load this page'), problemBox(error));
    }
  }

  document.getElementById('signout').addEventListener('click', () => {
    session.clear();
    signIn('Signed out.');
  });
  window.addEventListener('hashchange', route);
  route();
})();
