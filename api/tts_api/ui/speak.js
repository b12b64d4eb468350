// The Speak panel: model, voice, text, speed, format and engine parameters → POST /v1/audio/speech as
// server-sent events. WAV plays while it streams (Web Audio); the finished clip goes to the <audio>
// element, the download link and the session history.

import { ApiError, api, events } from './api.js';
import * as audio from './audio.js';
import { $, clear, formatSeconds, h, showError } from './dom.js';
import { onLanguageChange, t } from './i18n.js';
import { Highlighter } from './words.js';
import { ALL_PARAMETERS, engineClones, engineParameters, modelById, refreshModels, speechModels, store, subscribe } from './store.js';

const HISTORY_LIMIT = 20;
const history = [];
let clipNumber = 0;
let audioContext = null;
let running = null; // {controller, player} of the request in progress
let lastStatus = null; // {key, vars} of the status line, redrawn on a language change
let sample = null; // the sample text while the user has not changed it
let highlighter = null;
const captionUrls = [];

const els = {};

export function initSpeak() {
  const ids = ['model', 'voice', 'blend', 'text', 'speed', 'format', 'generate', 'stop', 'player', 'download', 'timestamps'];
  for (const id of [...ids, 'captions-vtt', 'captions-srt']) {
    els[id] = $(`#${id}`);
  }
  els.form = $('#speak-form');
  els.error = $('#speak-error');
  els.status = $('#speak-status');
  els.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    generate();
  });
  els.stop.addEventListener('click', () => running?.controller.abort());
  els.text.addEventListener('input', renderCount);
  els.speed.addEventListener('input', renderSpeed);
  els.format.addEventListener('change', renderFormatHint);
  els.model.addEventListener('change', () => {
    renderModelState();
    renderVoices();
    renderParameters();
  });
  els.voice.addEventListener('change', renderVoiceHint);
  highlighter = new Highlighter($('#words'));
  // replaying the finished clip highlights its words too
  els.player.addEventListener('play', () => highlighter.follow(() => (els.player.paused ? null : els.player.currentTime)));
  subscribe('models', renderModels);
  subscribe('voices', renderVoices);
  onLanguageChange(() => {
    if (els.text.value === sample) els.text.value = sample = t('speak.sample');
    renderModels();
    renderCount();
    renderFormatHint();
    renderHistory();
    if (lastStatus) setStatus(lastStatus.key, lastStatus.vars, lastStatus.kind);
  });
  if (!els.text.value) els.text.value = sample = t('speak.sample');
  renderSpeed();
  renderCount();
  renderFormatHint();
  renderModels();
  renderHistory();
}

/** Select a model and voice (from the Voices panel's "Use" button). */
export function selectVoice(model, voice) {
  els.model.value = model;
  renderModelState();
  renderVoices();
  renderParameters();
  els.voice.value = voice;
  renderVoiceHint();
}

const currentModel = () => modelById(els.model.value);

function renderModels() {
  const keep = els.model.value;
  clear(els.model);
  const models = speechModels();
  if (!models.length) {
    els.model.append(h('option', { value: '' }, t(store.modelsLoaded ? 'speak.noModels' : 'speak.needKey')));
  }
  for (const m of models) {
    const state = m.ready ? '' : ` · ${t(m.scaled_to_zero ? 'state.asleep' : 'state.notReady')}`;
    els.model.append(h('option', { value: m.id }, `${m.id} — ${m.engine}${state}`));
  }
  if (models.some((m) => m.id === keep)) els.model.value = keep;
  renderModelState();
  renderVoices();
  renderParameters();
}

function renderTimestamps() {
  const m = currentModel();
  const can = Boolean(m?.word_timestamps);
  els.timestamps.disabled = !can;
  if (!can) els.timestamps.checked = false;
  $('#timestamps-hint').textContent = m && !can ? t('speak.timestampsNo', { engine: m.engine }) : '';
}

function renderModelState() {
  renderTimestamps();
  const m = currentModel();
  const el = $('#model-state');
  if (!m) {
    el.textContent = '';
    return;
  }
  if (m.ready) el.textContent = t('speak.modelReady', { n: m.ready_replicas });
  else if (m.scaled_to_zero) el.textContent = t('speak.modelAsleep');
  else el.textContent = t('speak.modelNotReady', { reason: m.status });
}

function voiceLabel(v) {
  if (v.type === 'builtin') return v.default ? `${v.id} (${t('voices.default')})` : v.id;
  let state = t('voices.checking');
  if (v.ready === true) state = t('voices.ready');
  else if (v.ready === false) state = t('voices.notReady');
  return `${v.id} (${t(`voices.type.${v.type}`)}, ${state})`;
}

function renderVoices() {
  const m = currentModel();
  const keep = els.voice.value;
  clear(els.voice);
  els.voice.append(h('option', { value: 'default' }, t('speak.defaultVoice', { name: m?.default_voice || '—' })));
  if (m) {
    const mine = store.voices.filter((v) => v.model === m.id);
    const builtin = mine.filter((v) => v.type === 'builtin');
    const custom = mine.filter((v) => v.type !== 'builtin');
    if (builtin.length) {
      els.voice.append(
        h('optgroup', { label: t('speak.builtinVoices') }, builtin.map((v) => h('option', { value: v.id }, voiceLabel(v)))),
      );
    }
    if (custom.length) {
      els.voice.append(
        h('optgroup', { label: t('speak.customVoices') }, custom.map((v) => h('option', { value: v.id }, voiceLabel(v)))),
      );
    }
    const aliases = Object.entries(m.voice_aliases || {}).filter(([name]) => !mine.some((v) => v.id === name));
    if (aliases.length) {
      els.voice.append(
        h('optgroup', { label: t('speak.aliasVoices') }, aliases.map(([name, target]) => h('option', { value: name }, `${name} → ${target}`))),
      );
    }
  }
  $('#blend-field').hidden = !m?.voice_blending;
  if ([...els.voice.options].some((o) => o.value === keep)) els.voice.value = keep;
  renderVoiceHint();
}

function renderVoiceHint() {
  const m = currentModel();
  const v = store.voices.find((x) => x.id === els.voice.value && x.type !== 'builtin');
  const el = $('#voice-hint');
  if (v && v.type === 'clone' && m && !engineClones(m.engine)) el.textContent = t('speak.cloneHint', { engine: m.engine });
  else if (v && v.ready === false) el.textContent = v.message || t('voices.notReady');
  else el.textContent = v?.description || '';
}

function renderParameters() {
  const m = currentModel();
  const takes = m ? engineParameters(m.engine) : ALL_PARAMETERS;
  for (const p of ALL_PARAMETERS) $(`[data-param="${p}"]`).hidden = !takes.includes(p);
  $('#advanced-none').hidden = takes.length > 0;
}

function renderCount() {
  const limit = store.config.max_input_chars;
  const n = els.text.value.length;
  const el = $('#text-count');
  el.textContent = t('speak.count', { n: n.toLocaleString(), limit: limit.toLocaleString() });
  el.classList.toggle('over', n > limit);
}

function renderSpeed() {
  $('#speed-out').textContent = `${Number(els.speed.value).toFixed(2)}×`;
}

function renderFormatHint() {
  $('#format-hint').textContent = t(audio.STREAMED.has(els.format.value) ? 'speak.formatStreams' : 'speak.formatWhole');
}

function setStatus(key, vars = {}, kind = '') {
  lastStatus = key ? { key, vars, kind } : null;
  els.status.textContent = key ? t(key, vars) : '';
  els.status.className = `status ${kind}`;
}

function setBusy(busy) {
  els.generate.disabled = busy;
  els.stop.hidden = !busy;
  els.form.setAttribute('aria-busy', String(busy));
}

function requestBody() {
  const m = currentModel();
  if (!m) throw new ApiError(0, t('speak.pickModel'));
  const body = {
    model: m.id,
    input: els.text.value,
    voice: (m.voice_blending && els.blend.value.trim()) || els.voice.value || 'default',
    response_format: els.format.value,
    speed: Number(els.speed.value),
    stream_format: 'sse',
  };
  if (els.timestamps.checked && m.word_timestamps) body.timestamps = 'word';
  for (const p of engineParameters(m.engine)) {
    const value = $(`#${p}`).value.trim();
    if (value !== '') body[p] = Number(value);
  }
  return body;
}

function onStatusEvent(e) {
  const s = Math.round(e.elapsed ?? 0);
  if (e.status === 'waking') setStatus('speak.waking', { s }, 'waking');
  else if (e.status === 'queued') setStatus('speak.queued', { n: e.position ?? '?', s }, 'waking');
  else if (e.status === 'started') setStatus('speak.started', {}, 'busy');
}

/** The finished clip: what the <audio> element plays and what the download link saves. */
function finishClip(parts, format, done) {
  const bytes = audio.concatBytes(parts);
  if (format === 'wav') {
    const wav = audio.finalizeWav(bytes);
    const blob = new Blob([wav.bytes], { type: audio.MIME.wav });
    return { blob, playable: blob, seconds: wav.seconds };
  }
  const blob = new Blob([bytes], { type: audio.MIME[format] });
  if (format === 'pcm') {
    const rate = done.sample_rate;
    return { blob, playable: new Blob([audio.pcmToWav(bytes, rate)], { type: audio.MIME.wav }), seconds: bytes.length / 2 / rate };
  }
  return { blob, playable: blob, seconds: done.audio_seconds };
}

async function generate() {
  if (running) return;
  showError(els.error, null);
  let body;
  try {
    body = requestBody();
    if (!body.input.trim()) throw new ApiError(0, t('speak.emptyText'));
  } catch (err) {
    showError(els.error, err);
    return;
  }
  audioContext ??= new AudioContext();
  await audioContext.resume().catch(() => {});
  const controller = new AbortController();
  const player = audio.STREAMED.has(body.response_format) ? new audio.WavStreamPlayer(audioContext) : null;
  running = { controller, player };
  setBusy(true);
  for (const id of ['m-ttfa', 'm-total', 'm-length']) $(`#${id}`).textContent = '—';
  setStatus('speak.sending', {}, 'busy');
  const wasAsleep = !currentModel()?.ready;
  const started = performance.now();
  resetCaptions();
  // while the clip streams, the words follow the Web Audio clock, up to the end of what has arrived
  const streamClock = () =>
    player?.playing && audioContext.currentTime < player.pcm.cursor + 0.1 ? audioContext.currentTime - player.pcm.firstStart : null;
  const parts = [];
  let firstAudio = null;
  let done = null;
  try {
    for await (const e of events('v1/audio/speech', body, controller.signal)) {
      if (e.type === 'speech.status') {
        onStatusEvent(e);
      } else if (e.type === 'speech.audio.delta') {
        const bytes = audio.base64ToBytes(e.audio);
        parts.push(bytes);
        player?.push(bytes);
        if (player) highlighter.follow(streamClock);
        if (firstAudio === null) {
          firstAudio = (performance.now() - started) / 1000;
          $('#m-ttfa').textContent = formatSeconds(firstAudio);
        }
        if (player) setStatus('speak.playing', { s: player.seconds.toFixed(1) }, 'busy');
        else setStatus('speak.receiving', { kb: Math.round(parts.reduce((n, p) => n + p.length, 0) / 1024) }, 'busy');
      } else if (e.type === 'speech.word') {
        highlighter.add(e);
      } else if (e.type === 'speech.audio.done') {
        done = e;
      } else if (e.type === 'error') {
        const err = e.error || {};
        throw new ApiError(e.status || 0, err.message || t('speak.failed'), err.code);
      }
    }
    if (!done || !parts.length) throw new ApiError(0, t('speak.incomplete'));
    const total = (performance.now() - started) / 1000;
    const clip = finishClip(parts, body.response_format, done);
    const entry = addToHistory(body, clip, firstAudio, total);
    els.player.src = entry.playUrl;
    els.download.href = entry.url;
    els.download.download = entry.filename;
    els.download.hidden = false;
    $('#m-total').textContent = formatSeconds(total);
    $('#m-length').textContent = formatSeconds(clip.seconds);
    setStatus('speak.done', {}, 'ok');
    if (done.words) {
      highlighter.set(done.words);
      offerCaptions(done.words, entry.filename.replace(/\.[^.]+$/, '')).catch((err) => showError(els.error, err));
    }
    // streamed formats were heard already; the others play now that they are complete
    if (!player) els.player.play().catch(() => {});
  } catch (err) {
    player?.stop();
    highlighter.stop();
    if (err.name === 'AbortError') {
      setStatus('speak.stopped');
    } else {
      setStatus('speak.failed', {}, 'bad');
      showError(els.error, err);
    }
  } finally {
    running = null;
    setBusy(false);
    if (wasAsleep) refreshModels().catch(() => {});
  }
}

function resetCaptions() {
  highlighter.reset();
  for (const url of captionUrls.splice(0)) URL.revokeObjectURL(url);
  els['captions-vtt'].hidden = els['captions-srt'].hidden = true;
}

/** The captions of the clip just made, from its own words (POST /v1/audio/captions), as downloads. */
async function offerCaptions(words, stem) {
  for (const format of ['vtt', 'srt']) {
    const text = await api.captions({ words, format });
    const url = URL.createObjectURL(new Blob([text], { type: format === 'vtt' ? 'text/vtt' : 'application/x-subrip' }));
    captionUrls.push(url);
    const link = els[`captions-${format}`];
    link.href = url;
    link.download = `${stem}.${format}`;
    link.hidden = false;
  }
}

function addToHistory(body, clip, firstAudio, total) {
  clipNumber += 1;
  const entry = {
    n: clipNumber,
    model: body.model,
    voice: body.voice,
    format: body.response_format,
    text: body.input,
    seconds: clip.seconds,
    firstAudio,
    total,
    url: URL.createObjectURL(clip.blob),
    playUrl: clip.playable === clip.blob ? null : URL.createObjectURL(clip.playable),
    filename: `kube-tts-${body.model}-${clipNumber}.${audio.EXTENSION[body.response_format]}`,
  };
  entry.playUrl ??= entry.url;
  history.unshift(entry);
  for (const old of history.splice(HISTORY_LIMIT)) {
    URL.revokeObjectURL(old.url);
    if (old.playUrl !== old.url) URL.revokeObjectURL(old.playUrl);
  }
  renderHistory();
  return entry;
}

function renderHistory() {
  const list = clear($('#history'));
  $('#history-empty').hidden = history.length > 0;
  for (const e of history) {
    const excerpt = e.text.length > 140 ? `${e.text.slice(0, 140)}…` : e.text;
    list.append(
      h(
        'li',
        { class: 'clip' },
        h('p', { class: 'clip-head' }, `#${e.n} · ${e.model} · ${e.voice} · ${e.format.toUpperCase()}`),
        h('p', { class: 'clip-text' }, excerpt),
        h(
          'p',
          { class: 'hint' },
          t('speak.clipFacts', {
            length: formatSeconds(e.seconds),
            ttfa: formatSeconds(e.firstAudio),
            total: formatSeconds(e.total),
          }),
        ),
        h(
          'div',
          { class: 'clip-actions' },
          h('audio', { controls: true, preload: 'metadata', src: e.playUrl, 'aria-label': t('speak.clipLabel', { n: e.n }) }),
          h('a', { class: 'button', href: e.url, download: e.filename }, t('speak.download')),
        ),
      ),
    );
  }
}
