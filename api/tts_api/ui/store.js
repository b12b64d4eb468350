// What several panels show: the models, the voices and the router's limits, fetched once and
// refreshed on demand; panels subscribe to redraw.

import { api } from './api.js';

export const store = {
  modelsLoaded: false,
  voicesLoaded: false,
  models: [],
  voices: [],
  // the router's defaults until /ui/config.json answers
  config: { max_input_chars: 4096, voice_max_bytes: 10485760, voice_min_seconds: 1, voice_max_seconds: 30 },
};

const listeners = { models: [], voices: [] };

export function subscribe(what, fn) {
  listeners[what].push(fn);
}

export async function refreshModels() {
  store.models = (await api.models()).data;
  store.modelsLoaded = true;
  for (const fn of listeners.models) fn();
}

export async function refreshVoices() {
  store.voices = (await api.voices()).data;
  store.voicesLoaded = true;
  for (const fn of listeners.voices) fn();
}

export async function loadConfig() {
  Object.assign(store.config, await api.config());
}

export function modelById(id) {
  return store.models.find((m) => m.id === id);
}

/** Models that speak (the router's `capability`; a router without the field serves speech only). */
export function speechModels() {
  return store.models.filter((m) => (m.capability || 'speech') === 'speech');
}

/** The model that transcribes reference clips (ADR 0041): the first by name, as the operator picks. */
export function transcriptionModel() {
  return store.models.filter((m) => m.capability === 'transcription').sort((a, b) => a.id.localeCompare(b.id))[0];
}

// Sampling parameters each engine takes (the inference pods' `parameters`, docs/architecture.md);
// an engine not listed here gets every field and its pod says which it refuses.
const ENGINE_PARAMETERS = { piper: [], espeak: [], kokoro: [], 'pocket-tts': ['temperature', 'seed'] };
export const ALL_PARAMETERS = ['temperature', 'top_p', 'seed'];
// engines that can speak a voice cloned from a reference clip
const CLONING_ENGINES = new Set(['pocket-tts']);

export function engineParameters(engine) {
  return ENGINE_PARAMETERS[engine] ?? ALL_PARAMETERS;
}

export function engineClones(engine) {
  return CLONING_ENGINES.has(engine);
}
