// The Status panel: GET /v1/status — every model's replicas, readiness, sleep state and last activity,
// its pods (device, GPU memory) and the GPU capacity of every node; Wake and Sleep (admin key).

import { api, apiKey } from './api.js';
import { $, cell, clear, h, showError } from './dom.js';
import { locale, onLanguageChange, t } from './i18n.js';
import { refreshModels } from './store.js';

let last = null; // the latest /v1/status answer
let loadedAt = null;

export function initStatus() {
  $('#status-refresh').addEventListener('click', () => refreshStatus());
  onLanguageChange(render);
  render();
}

export async function refreshStatus() {
  try {
    last = await api.status();
    loadedAt = new Date();
    showError($('#status-error'), null);
  } catch (err) {
    showError($('#status-error'), err);
  }
  render();
}

function relative(iso) {
  if (!iso) return '—';
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  const fmt = new Intl.RelativeTimeFormat(locale(), { numeric: 'auto' });
  const abs = Math.abs(seconds);
  if (abs < 60) return fmt.format(Math.round(seconds), 'second');
  if (abs < 3600) return fmt.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return fmt.format(Math.round(seconds / 3600), 'hour');
  return fmt.format(Math.round(seconds / 86400), 'day');
}

function gib(bytes) {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

// Ready-condition reasons the operator sets when a model cannot come up by itself (ADR 0005)
const PROBLEMS = new Set(['InsufficientGPU', 'Unschedulable', 'CrashLooping', 'ModelFetchFailed']);

function modelState(d) {
  const why = d.reason ? ` (${d.reason})` : '';
  if (d.waking) return { text: t('state.waking'), kind: 'warn' };
  if (d.scaled_to_zero) return { text: t('state.asleep'), kind: 'sleep' };
  if (d.ready_replicas > 0) return { text: t('state.ready'), kind: 'ok' };
  if (d.replicas > 0 && !PROBLEMS.has(d.reason)) return { text: `${t('state.starting')}${why}`, kind: 'warn' };
  return { text: `${t('state.notReady')}${why}`, kind: 'bad' };
}

async function scale(action, name, button) {
  button.disabled = true;
  $('#status-updated').textContent = t(action === 'wake' ? 'status.waking' : 'status.sleeping', { name });
  try {
    await (action === 'wake' ? api.wake(name) : api.sleep(name));
    showError($('#status-action-error'), null);
    await refreshModels().catch(() => {});
  } catch (err) {
    showError($('#status-action-error'), err);
  } finally {
    button.disabled = false;
  }
  await refreshStatus();
}

function render() {
  $('#status-updated').textContent = loadedAt
    ? t('status.updated', { time: loadedAt.toLocaleTimeString(locale()) })
    : t(apiKey() ? 'status.loading' : 'status.needKey');
  const models = clear($('#models-table tbody'));
  const pods = clear($('#pods-table tbody'));
  const nodes = clear($('#nodes-table tbody'));
  if (!last) return;
  for (const d of last.deployments) {
    const state = modelState(d);
    models.append(
      h(
        'tr',
        { dataset: { model: d.name } },
        h('th', { scope: 'row' }, d.name),
        cell(t('status.engine'), d.engine || '—'),
        cell(
          t('status.replicas'),
          h('span', { title: t('status.replicaRange', { min: d.min_replicas, max: d.max_replicas ?? '—' }) }, `${d.ready_replicas} / ${d.replicas}`),
        ),
        cell(
          t('status.state'),
          h('span', { class: `badge ${state.kind}` }, state.text),
          d.message ? h('span', { class: 'hint block' }, d.message) : null,
        ),
        cell(t('status.lastActivity'), h('time', { datetime: d.last_activity || '', title: d.last_activity || '' }, relative(d.last_activity))),
        cell(t('status.requests'), `${d.inflight_requests} / ${d.queued_requests}`),
        h(
          'td',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'small', 'aria-label': t('status.wakeModel', { name: d.name }), onclick: (ev) => scale('wake', d.name, ev.currentTarget) }, t('status.wake')),
          h('button', { type: 'button', class: 'small', 'aria-label': t('status.sleepModel', { name: d.name }), onclick: (ev) => scale('sleep', d.name, ev.currentTarget) }, t('status.sleep')),
        ),
      ),
    );
    for (const p of d.pods) {
      const inf = p.inference || {};
      let podState = p.ready ? t('state.ready') : p.phase || '—';
      if (p.terminating) podState = t('state.terminating');
      const memory = inf.gpu_memory ? `${gib(inf.gpu_memory.used_bytes)} / ${gib(inf.gpu_memory.total_bytes)}` : '—';
      pods.append(
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, p.name),
          cell(t('status.model'), d.name),
          cell(t('status.node'), p.node || '—'),
          cell(t('status.state'), podState),
          cell(t('status.gpus'), d.gpu_per_replica ? `${d.gpu_per_replica} × ${d.gpu_resource}` : '0'),
          cell(t('status.device'), inf.device || '—'),
          cell(t('status.gpuMemory'), memory),
        ),
      );
    }
  }
  if (!last.deployments.length) models.append(h('tr', {}, h('td', { colspan: 7, class: 'hint' }, t('status.noModels'))));
  if (!pods.children.length) pods.append(h('tr', {}, h('td', { colspan: 7, class: 'hint' }, t('status.noPods'))));
  for (const n of last.nodes || []) {
    for (const [resource, r] of Object.entries(n.resources)) {
      const product = [n.product, n.memory_mib_per_gpu ? `${Math.round(n.memory_mib_per_gpu / 1024)} GiB` : null].filter(Boolean).join(' · ');
      nodes.append(
        h(
          'tr',
          { dataset: { node: n.node } },
          h('th', { scope: 'row' }, n.node, n.ready ? null : h('span', { class: 'badge bad' }, t('state.notReady'))),
          cell(t('status.product'), product || '—'),
          cell(t('status.resource'), resource),
          cell(
            t('status.gpuUse'),
            h('meter', { min: 0, max: Math.max(1, r.allocatable), value: r.requested, 'aria-label': t('status.gpuMeter', { node: n.node }) }),
            h('span', {}, t('status.gpuCount', { requested: r.requested, allocatable: r.allocatable, capacity: r.capacity })),
          ),
        ),
      );
    }
  }
  if (!nodes.children.length) nodes.append(h('tr', {}, h('td', { colspan: 4, class: 'hint' }, t('status.noNodes'))));
  const notes = [];
  if (last.gpu_requested_scope && last.gpu_requested_scope !== 'cluster') notes.push(t('status.scope', { scope: last.gpu_requested_scope }));
  for (const e of last.errors || []) notes.push(e);
  $('#nodes-scope').textContent = notes.join(' ');
}
