// The Voices panel: create a voice from an uploaded or recorded reference clip (POST
// /v1/audio/voices, multipart), list every voice, delete custom ones. The router takes WAV or FLAC
// only, so a recording (WebM/Opus from MediaRecorder) becomes a mono 16-bit WAV here first.

import { ApiError, api } from './api.js';
import * as audio from './audio.js';
import { $, cell, clear, h, showError } from './dom.js';
import { onLanguageChange, t } from './i18n.js';
import { engineClones, modelById, refreshVoices, speechModels, store, subscribe, transcriptionModel } from './store.js';

const els = {};
let clip = null; // {file, seconds, source: 'file' | 'recording' | 'converted'}
let previewUrl = null;
let recorder = null; // {media, stream, chunks, started, timer}
let onUse = () => {};

export function initVoices(useVoice) {
  onUse = useVoice;
  els.form = $('#voice-form');
  els.model = $('#v-model');
  els.file = $('#v-file');
  els.record = $('#v-record');
  els.preview = $('#v-preview');
  els.error = $('#v-error');
  els.status = $('#v-status');
  els.transcribe = $('#v-transcribe');
  els.transcribe.addEventListener('click', () => transcribe());
  els.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    create();
  });
  els.file.addEventListener('change', () => {
    const file = els.file.files[0];
    if (file) useFile(file);
  });
  els.record.addEventListener('click', () => (recorder ? stopRecording() : startRecording()));
  els.model.addEventListener('change', renderModelHint);
  $('#voices-refresh').addEventListener('click', () => reload());
  subscribe('models', renderModels);
  subscribe('voices', renderTable);
  renderModels();
  renderTable();
  onLanguageChange(() => {
    renderModels();
    renderTable();
    renderClipInfo();
    renderRecordButton();
  });
}

/** Reload the voice list, showing a failure in this panel. */
export async function reload() {
  try {
    await refreshVoices();
    showError($('#voices-error'), null);
  } catch (err) {
    showError($('#voices-error'), err);
  }
}

function renderModels() {
  const keep = els.model.value;
  clear(els.model);
  const models = speechModels();
  if (!models.length) {
    els.model.append(h('option', { value: '' }, t(store.modelsLoaded ? 'speak.noModels' : 'speak.needKey')));
  }
  for (const m of models) els.model.append(h('option', { value: m.id }, `${m.id} — ${m.engine}`));
  if (models.some((m) => m.id === keep)) els.model.value = keep;
  renderModelHint();
  renderTranscriber();
}

function renderModelHint() {
  const m = modelById(els.model.value);
  $('#v-model-hint').textContent = m && !engineClones(m.engine) ? t('voices.cannotClone', { engine: m.engine }) : '';
}

// --- the transcript ----------------------------------------------------------------------------

function renderTranscriber() {
  const model = transcriptionModel();
  els.transcribe.disabled = !model;
  $('#v-transcript-hint').textContent = model
    ? t('voices.transcriptHint', { model: model.id })
    : store.modelsLoaded
      ? t('voices.noTranscriber')
      : '';
}

/** Fill the transcript from the namespace's transcription model, for the user to check and correct. */
async function transcribe() {
  showError(els.error, null);
  const model = transcriptionModel();
  if (!clip) {
    showError(els.error, new ApiError(0, t('voices.needClip')));
    return;
  }
  const form = new FormData();
  form.append('model', model.id);
  form.append('file', clip.file, clip.file.name);
  const language = $('#v-language').value.trim().split(/[-_]/)[0].toLowerCase();
  if (/^[a-z]{2}$/.test(language)) form.append('language', language);
  els.transcribe.disabled = true;
  $('#v-transcribe-state').textContent = t(model.ready ? 'voices.transcribing' : 'voices.transcribingWake', { model: model.id });
  try {
    const heard = await api.transcribe(form);
    $('#v-transcript').value = (heard.text || '').trim();
    $('#v-transcribe-state').textContent = t('voices.transcribed', { model: model.id });
    $('#v-transcript').focus();
  } catch (err) {
    $('#v-transcribe-state').textContent = '';
    showError(els.error, err);
  } finally {
    els.transcribe.disabled = !transcriptionModel();
  }
}

// --- the clip ----------------------------------------------------------------------------------

function setClip(next) {
  clip = next;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = clip ? URL.createObjectURL(clip.file) : null;
  els.preview.hidden = !clip;
  if (previewUrl) els.preview.src = previewUrl;
  else els.preview.removeAttribute('src');
  renderClipInfo();
}

function renderClipInfo() {
  const el = $('#v-clip-info');
  if (!clip) {
    el.textContent = '';
    return;
  }
  const { voice_min_seconds: min, voice_max_seconds: max } = store.config;
  let text = t(`voices.clip.${clip.source}`, { name: clip.file.name, s: clip.seconds.toFixed(1) });
  if (clip.seconds < min || clip.seconds > max) text += ` ${t('voices.clipLength', { min, max })}`;
  el.textContent = text;
}

async function useFile(file) {
  showError(els.error, null);
  try {
    const decoded = await audio.decodeClip(file);
    if (/\.(wav|flac)$/i.test(file.name) || ['audio/wav', 'audio/x-wav', 'audio/flac'].includes(file.type)) {
      setClip({ file, seconds: decoded.duration, source: 'file' });
    } else {
      // the router stores WAV or FLAC only; anything else the browser can decode becomes WAV
      const wav = await audio.toWav(decoded);
      const name = `${file.name.replace(/\.[^.]*$/, '')}.wav`;
      setClip({ file: new File([wav], name, { type: audio.MIME.wav }), seconds: decoded.duration, source: 'converted' });
    }
  } catch (err) {
    setClip(null);
    showError(els.error, new ApiError(0, t('voices.cannotDecode', { name: file.name, detail: err.message })));
  }
}

function renderRecordButton() {
  els.record.textContent = t(recorder ? 'voices.recordStop' : 'voices.recordStart');
  els.record.setAttribute('aria-pressed', String(Boolean(recorder)));
}

async function startRecording() {
  showError(els.error, null);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showError(els.error, new ApiError(0, t('voices.noMicrophone', { detail: err.message })));
    return;
  }
  const media = new MediaRecorder(stream);
  const chunks = [];
  media.addEventListener('dataavailable', (ev) => ev.data.size && chunks.push(ev.data));
  media.addEventListener('stop', () => finishRecording(chunks, media.mimeType));
  const started = performance.now();
  const limit = store.config.voice_max_seconds;
  const timer = setInterval(() => {
    const s = (performance.now() - started) / 1000;
    $('#v-record-state').textContent = t('voices.recording', { s: s.toFixed(1) });
    if (s >= limit - 0.2) stopRecording(); // stay inside the router's limit
  }, 100);
  recorder = { media, stream, timer };
  media.start(250);
  renderRecordButton();
}

function stopRecording() {
  if (!recorder) return;
  clearInterval(recorder.timer);
  recorder.media.stop();
  for (const track of recorder.stream.getTracks()) track.stop();
  recorder = null;
  renderRecordButton();
}

async function finishRecording(chunks, mimeType) {
  $('#v-record-state').textContent = t('voices.converting');
  try {
    const decoded = await audio.decodeClip(new Blob(chunks, { type: mimeType }));
    const wav = await audio.toWav(decoded);
    setClip({ file: new File([wav], 'recording.wav', { type: audio.MIME.wav }), seconds: decoded.duration, source: 'recording' });
    els.file.value = '';
    $('#v-record-state').textContent = '';
  } catch (err) {
    $('#v-record-state').textContent = '';
    showError(els.error, new ApiError(0, t('voices.cannotDecode', { name: 'recording', detail: err.message })));
  }
}

// --- create, list, delete ------------------------------------------------------------------------

async function create() {
  showError(els.error, null);
  if (!clip) {
    showError(els.error, new ApiError(0, t('voices.needClip')));
    return;
  }
  const name = $('#v-name').value.trim();
  const form = new FormData();
  form.append('name', name);
  form.append('model', els.model.value);
  form.append('file', clip.file, clip.file.name);
  form.append('transcript', $('#v-transcript').value);
  form.append('language', $('#v-language').value.trim() || 'en');
  form.append('description', $('#v-description').value);
  form.append('consent', $('#v-consent').checked ? 'true' : 'false');
  $('#v-create').disabled = true;
  els.status.textContent = t('voices.creating');
  try {
    const created = await api.createVoice(form);
    els.status.textContent = t('voices.created', { name: created.id, s: created.audio?.durationSeconds ?? '?' });
    $('#v-name').value = '';
    $('#v-consent').checked = false;
    setClip(null);
    els.file.value = '';
    await waitListed(created.id);
  } catch (err) {
    els.status.textContent = '';
    showError(els.error, err);
  } finally {
    $('#v-create').disabled = false;
  }
}

/** The router lists a new voice once its watch has seen it: usually at once, give it a few seconds. */
async function waitListed(name) {
  for (let i = 0; i < 10; i++) {
    await reload();
    if (store.voices.some((v) => v.id === name)) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function remove(voice) {
  if (!window.confirm(t('voices.confirmDelete', { name: voice.id }))) return;
  try {
    await api.deleteVoice(voice.id);
    showError($('#voices-action-error'), null);
    els.status.textContent = t('voices.deleted', { name: voice.id });
    for (let i = 0; i < 10 && store.voices.some((v) => v.id === voice.id); i++) {
      await reload();
      if (store.voices.some((v) => v.id === voice.id)) await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } catch (err) {
    showError($('#voices-action-error'), err);
  }
}

function voiceState(v) {
  if (v.type === 'builtin') return v.default ? t('voices.default') : '—';
  if (v.ready === true) {
    const s = v.audio?.durationSeconds;
    const ready = s ? `${t('voices.ready')} · ${Number(s).toFixed(1)} s` : t('voices.ready');
    return v.transcript_source === 'transcribed' ? `${ready} · ${t('voices.transcriptFromModel')}` : ready;
  }
  if (v.ready === false) return `${t('voices.notReady')}: ${v.message || v.reason || ''}`;
  return t('voices.checking');
}

function renderTable() {
  const body = clear($('#voices-table tbody'));
  if (!store.voices.length) {
    const empty = store.voicesLoaded ? 'voices.none' : 'voices.needKey';
    body.append(h('tr', {}, h('td', { colspan: 6, class: 'hint' }, t(empty))));
    return;
  }
  for (const v of store.voices) {
    const actions = h(
      'td',
      { class: 'row-actions' },
      h('button', { type: 'button', class: 'small', onclick: () => onUse(v.model, v.id), 'aria-label': t('voices.useVoice', { name: v.id }) }, t('voices.use')),
    );
    if (v.type !== 'builtin') {
      actions.append(
        h(
          'button',
          { type: 'button', class: 'small danger', onclick: () => remove(v), 'aria-label': t('voices.deleteVoice', { name: v.id }) },
          t('voices.delete'),
        ),
      );
    }
    body.append(
      h(
        'tr',
        { dataset: { voice: v.id } },
        h('th', { scope: 'row' }, v.id),
        cell(t('voices.model'), v.model),
        cell(t('voices.type'), t(`voices.type.${v.type}`)),
        cell(t('voices.language'), v.language || '—'),
        cell(t('voices.state'), h('span', { class: v.ready === false ? 'bad' : '' }, voiceState(v))),
        actions,
      ),
    );
  }
}
