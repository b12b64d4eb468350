// The Productions panel: long texts and multi-role scripts rendered to chapter files by a TtsJob
// (POST /v1/audio/jobs, ADR 0049/0050). Paste or upload a text or a "Role: line" script, give each
// role a model and a voice, watch the progress, play and download the chapters.

import { ApiError, api } from './api.js';
import { $, cell, clear, h, showError } from './dom.js';
import { locale, onLanguageChange, t } from './i18n.js';
import { speechModels, store, subscribe } from './store.js';

// a plain-text script's role prefix (ADR 0049: letters, digits, space, _ . ' -; 40 characters, a letter first)
const ROLE_LINE = /^([A-Za-z][A-Za-z0-9 _.'-]{0,39}):\s/;
const MAX_UPLOAD = 1024 * 1024;
const els = {};
let jobs = [];
let loaded = false;
let selected = null; // the job whose chapters are shown
let detail = null;
let roleChoice = {}; // role -> {model, voice}: what the user picked survives re-detecting the roles
let uploaded = null; // {file, text}: a chosen file goes up as itself (up to 1 MiB) while the text is unedited
const players = new Map(); // "job/n" -> object URL of a fetched chapter

export function initProductions() {
  els.form = $('#job-form');
  els.model = $('#j-model');
  els.voice = $('#j-voice');
  els.text = $('#j-text');
  els.file = $('#j-file');
  els.kind = () => document.querySelector('input[name="j-kind"]:checked').value;
  els.error = $('#j-error');
  els.status = $('#j-status');
  els.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    create();
  });
  els.model.addEventListener('change', () => renderVoices(els.voice, els.model.value));
  els.text.addEventListener('input', renderRoles);
  for (const radio of document.querySelectorAll('input[name="j-kind"]')) radio.addEventListener('change', renderRoles);
  els.file.addEventListener('change', useFile);
  $('#jobs-refresh').addEventListener('click', () => reload());
  subscribe('models', renderModels);
  subscribe('voices', () => {
    renderVoices(els.voice, els.model.value);
    renderRoles();
  });
  renderModels();
  renderTable();
  onLanguageChange(() => {
    renderModels();
    renderTable();
    renderDetail();
  });
}

/** Reload the list (and the job shown), showing a failure in this panel. */
export async function reload() {
  try {
    jobs = (await api.jobs()).data;
    loaded = true;
    showError($('#jobs-error'), null);
    if (selected) detail = await api.job(selected).catch(() => null);
  } catch (err) {
    showError($('#jobs-error'), err);
  }
  renderTable();
  renderDetail();
}

// --- the form ----------------------------------------------------------------------------------

function modelOptions(select, keep) {
  clear(select);
  const models = speechModels();
  if (!models.length) select.append(h('option', { value: '' }, t(store.modelsLoaded ? 'speak.noModels' : 'speak.needKey')));
  for (const m of models) select.append(h('option', { value: m.id }, `${m.id} — ${m.engine}`));
  if (models.some((m) => m.id === keep)) select.value = keep;
}

function renderVoices(select, model, keep = select.value) {
  clear(select);
  const m = store.models.find((x) => x.id === model);
  select.append(h('option', { value: 'default' }, t('speak.defaultVoice', { name: m?.default_voice || '—' })));
  for (const v of store.voices.filter((x) => x.model === model)) select.append(h('option', { value: v.id }, v.id));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

function renderModels() {
  modelOptions(els.model, els.model.value);
  renderVoices(els.voice, els.model.value);
  renderRoles();
}

/** The roles of a plain-text script, in order of their first line. */
export function scriptRoles(text) {
  const roles = [];
  for (const line of text.split('\n')) {
    const m = ROLE_LINE.exec(line);
    if (m && !roles.includes(m[1].trim())) roles.push(m[1].trim());
  }
  return roles;
}

function renderRoles() {
  const script = els.kind() === 'script';
  const box = $('#j-roles');
  box.hidden = !script;
  const body = clear($('#j-roles tbody'));
  if (!script) return;
  const roles = scriptRoles(els.text.value);
  $('#j-roles-none').hidden = roles.length > 0;
  for (const role of roles) {
    const choice = roleChoice[role] || { model: els.model.value, voice: 'default' };
    const model = h('select', { 'aria-label': t('jobs.roleModel', { role }), dataset: { role } });
    const voice = h('select', { 'aria-label': t('jobs.roleVoice', { role }), dataset: { role } });
    modelOptions(model, choice.model);
    renderVoices(voice, model.value, choice.voice);
    const remember = () => {
      roleChoice[role] = { model: model.value, voice: voice.value };
    };
    model.addEventListener('change', () => {
      renderVoices(voice, model.value);
      remember();
    });
    voice.addEventListener('change', remember);
    body.append(h('tr', { dataset: { role } }, h('th', { scope: 'row' }, role), cell(t('jobs.model'), model), cell(t('jobs.voice'), voice)));
  }
}

async function useFile() {
  const file = els.file.files[0];
  if (!file) return;
  showError(els.error, null);
  if (file.size > MAX_UPLOAD) {
    showError(els.error, new ApiError(0, t('jobs.fileTooBig', { mib: (file.size / MAX_UPLOAD).toFixed(1) })));
    els.file.value = '';
    return;
  }
  try {
    els.text.value = new TextDecoder('utf-8', { fatal: true }).decode(await file.arrayBuffer());
    uploaded = { file, text: els.text.value };
  } catch {
    showError(els.error, new ApiError(0, t('jobs.notText')));
    els.file.value = '';
    return;
  }
  renderRoles();
}

/** The request body: the TtsJob's spec as the router takes it (camelCase, as in the CRD). */
function requestBody() {
  const deployment = els.model.value;
  const body = { deployment, voice: els.voice.value, text: els.text.value, format: $('#j-format').value };
  const name = $('#j-name').value.trim();
  if (name) body.name = name;
  const split = $('#j-chapters').value;
  if (split !== 'none') body.chapters = split === 'size' ? { split, maxCharacters: 20000 } : { split };
  const parallelism = Number($('#j-parallelism').value);
  if (parallelism > 1) body.parallelism = parallelism;
  if (els.kind() === 'script') {
    body.textFormat = 'script';
    body.roles = {};
    for (const row of document.querySelectorAll('#j-roles tbody tr')) {
      const [model, voice] = row.querySelectorAll('select');
      body.roles[row.dataset.role] = { voice: voice.value, ...(model.value !== deployment ? { deployment: model.value } : {}) };
    }
  }
  return body;
}

/** The same request as a multipart upload: the file itself, the other fields as form fields. */
function uploadForm(body) {
  const form = new FormData();
  form.append('file', uploaded.file, uploaded.file.name);
  for (const [key, value] of Object.entries(body)) {
    if (key === 'text') continue;
    form.append(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
  }
  return form;
}

async function create() {
  showError(els.error, null);
  if (!els.text.value.trim()) {
    showError(els.error, new ApiError(0, t('jobs.needText')));
    return;
  }
  $('#j-create').disabled = true;
  els.status.textContent = t('jobs.creating');
  try {
    const body = requestBody();
    const job = uploaded && uploaded.text === els.text.value ? await api.createJobUpload(uploadForm(body)) : await api.createJob(body);
    els.status.textContent = t('jobs.created', { name: job.name });
    selected = job.name;
    await reload();
  } catch (err) {
    els.status.textContent = '';
    showError(els.error, err);
  } finally {
    $('#j-create').disabled = false;
  }
}

// --- the list ----------------------------------------------------------------------------------

function phaseLabel(job) {
  return job.phase ? t(`jobs.phase.${job.phase}`) : t('jobs.phase.new');
}

function progressCell(job) {
  const p = job.progress;
  if (!p || !p.chunksTotal) return h('span', { class: 'hint' }, '—');
  return h(
    'span',
    { class: 'job-progress' },
    h('progress', { max: p.chunksTotal, value: p.chunksDone, 'aria-label': t('jobs.progressOf', { name: job.name }) }),
    ` ${p.summary || `${p.chunksDone}/${p.chunksTotal}`}`,
  );
}

function renderTable() {
  const body = clear($('#jobs-table tbody'));
  if (!jobs.length) {
    body.append(h('tr', {}, h('td', { colspan: 5, class: 'hint' }, t(loaded ? 'jobs.none' : 'jobs.needKey'))));
    return;
  }
  for (const job of jobs) {
    const created = job.createdAt ? new Date(job.createdAt).toLocaleString(locale()) : '—';
    body.append(
      h(
        'tr',
        { dataset: { job: job.name, phase: job.phase || '' }, class: job.name === selected ? 'selected' : '' },
        h('th', { scope: 'row' }, job.name),
        cell(t('jobs.phase'), h('span', { class: job.phase === 'Failed' ? 'bad' : '' }, phaseLabel(job))),
        cell(t('jobs.progress'), progressCell(job)),
        cell(t('jobs.createdAt'), created),
        h(
          'td',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'small', onclick: () => open(job.name), 'aria-label': t('jobs.openJob', { name: job.name }) }, t('jobs.open')),
          h('button', { type: 'button', class: 'small danger', onclick: () => remove(job.name), 'aria-label': t('jobs.deleteJob', { name: job.name }) }, t('jobs.delete')),
        ),
      ),
    );
  }
}

async function open(name) {
  selected = name;
  detail = null;
  await reload();
}

async function remove(name) {
  showError($('#jobs-action-error'), null);
  try {
    await api.deleteJob(name);
    if (selected === name) {
      selected = null;
      detail = null;
    }
    await reload();
  } catch (err) {
    showError($('#jobs-action-error'), err);
  }
}

// --- one job's chapters ------------------------------------------------------------------------

/** 4.2 s, or 12:07 (minutes:seconds), or 1:02:07 */
function clock(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const two = (n) => String(n).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}` : `${Math.floor(s / 60)}:${two(s % 60)}`;
}

function renderDetail() {
  const box = $('#job-detail');
  box.hidden = !detail;
  if (!detail) return;
  $('#job-detail-title').textContent = t('jobs.chaptersOf', { name: detail.name });
  const failed = (detail.status.conditions || []).find((c) => c.type === 'Failed' && c.status === 'True');
  const problem = $('#job-detail-error');
  problem.hidden = !failed;
  problem.textContent = failed ? `${failed.reason}: ${failed.message}` : '';
  const list = clear($('#job-chapters'));
  const chapters = detail.status.chapters || [];
  $('#job-chapters-none').hidden = chapters.length > 0;
  for (const c of chapters) {
    const key = `${detail.name}/${c.number}`;
    const audioEl = h('audio', { controls: true, preload: 'none', 'aria-label': t('jobs.player', { title: c.title || c.number }) });
    if (players.has(key)) audioEl.src = players.get(key);
    const download = h('a', { class: 'button small', hidden: !players.has(key), download: c.file.split('/').pop(), href: players.get(key) || '#' }, t('jobs.download'));
    const load = h('button', { type: 'button', class: 'small', hidden: players.has(key) }, t('jobs.load'));
    load.addEventListener('click', async () => {
      load.disabled = true;
      try {
        const blob = await api.chapter(detail.name, c.number);
        const url = URL.createObjectURL(blob);
        players.set(key, url);
        audioEl.src = url;
        download.href = url;
        download.hidden = false;
        load.hidden = true;
      } catch (err) {
        showError($('#jobs-action-error'), err);
        load.disabled = false;
      }
    });
    const length = Number.isFinite(c.durationSeconds) ? ` · ${clock(c.durationSeconds)}` : '';
    list.append(h('li', { dataset: { chapter: c.number } }, h('span', { class: 'chapter-title' }, `${c.number}. ${c.title || ''}${length}`), audioEl, load, download));
  }
}
