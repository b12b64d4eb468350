// The router's HTTP API as the page uses it. The key lives in sessionStorage only (this tab, until it
// closes) and is sent as `Authorization: Bearer` to this origin; paths are relative, so a router
// served under a path prefix works too.

import { t } from './i18n.js';

const KEY = 'kubetts.apiKey';

export function apiKey() {
  return sessionStorage.getItem(KEY) || '';
}

export function setApiKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetApiKey() {
  sessionStorage.removeItem(KEY);
}

/** An answer in OpenAI's error shape, or a failure to reach the router at all. */
export class ApiError extends Error {
  constructor(status, message, code = null, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }

  describe() {
    const where = [this.code, this.status ? `HTTP ${this.status}` : null].filter(Boolean).join(', ');
    return where ? `${this.message} (${where})` : this.message;
  }
}

async function errorFrom(resp) {
  const text = await resp.text().catch(() => '');
  try {
    const err = JSON.parse(text).error;
    if (err && err.message) return new ApiError(resp.status, err.message, err.code, err.param);
  } catch {
    // not JSON: fall through to the status line
  }
  return new ApiError(resp.status, text.slice(0, 300) || `${resp.status} ${resp.statusText}`);
}

function headers(key, extra = {}) {
  const k = key ?? apiKey();
  return k ? { Authorization: `Bearer ${k}`, ...extra } : extra;
}

async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, t('error.network', { detail: err.message }));
  }
}

/** JSON request; throws ApiError with the API's own message on any non-2xx answer. */
export async function request(path, { method = 'GET', json, form, key, signal } = {}) {
  const init = { method, headers: headers(key), signal };
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form; // multipart: the browser sets the boundary
  }
  const resp = await send(path, init);
  if (!resp.ok) throw await errorFrom(resp);
  return resp.status === 204 ? null : resp.json();
}

/** POST a body and yield the JSON of each server-sent event as it arrives. */
export async function* events(path, body, signal) {
  const resp = await send(path, {
    method: 'POST',
    headers: headers(null, { 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
    body: JSON.stringify(body),
    signal,
  });
  if (!resp.ok) throw await errorFrom(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        if (data) yield JSON.parse(data);
      }
    }
  } finally {
    // the consumer stopped early: close the connection, so the router stops the synthesis
    if (!finished) await reader.cancel().catch(() => {});
  }
}

/** Captions (WebVTT or SubRip text) for words with their times. */
async function captions(body) {
  const resp = await send('v1/audio/captions', {
    method: 'POST',
    headers: headers(null, { 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
  });
  if (!resp.ok) throw await errorFrom(resp);
  return resp.text();
}

/** A chapter file of a production, as a Blob (the key goes in a header, so no plain link can fetch it). */
async function chapter(name, number) {
  const resp = await send(`v1/audio/jobs/${encodeURIComponent(name)}/chapters/${number}`, { headers: headers() });
  if (!resp.ok) throw await errorFrom(resp);
  return resp.blob();
}

export const api = {
  captions,
  models: (key) => request('v1/models', { key }),
  voices: () => request('v1/audio/voices'),
  status: () => request('v1/status'),
  config: () => request('ui/config.json'),
  wake: (name) => request(`v1/models/${encodeURIComponent(name)}/wake`, { method: 'POST' }),
  sleep: (name) => request(`v1/models/${encodeURIComponent(name)}/sleep`, { method: 'POST' }),
  createVoice: (form) => request('v1/audio/voices', { method: 'POST', form }),
  transcribe: (form) => request('v1/audio/transcriptions', { method: 'POST', form }),
  deleteVoice: (name) => request(`v1/audio/voices/${encodeURIComponent(name)}`, { method: 'DELETE' }),
  jobs: () => request('v1/audio/jobs'),
  job: (name) => request(`v1/audio/jobs/${encodeURIComponent(name)}`),
  createJob: (json) => request('v1/audio/jobs', { method: 'POST', json }),
  createJobUpload: (form) => request('v1/audio/jobs', { method: 'POST', form }),
  deleteJob: (name) => request(`v1/audio/jobs/${encodeURIComponent(name)}`, { method: 'DELETE' }),
  chapter,
};
