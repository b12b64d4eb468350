// Audio in the page: playing a WAV stream while it arrives (Web Audio), finishing the file for the
// <audio> element and the download, and turning a microphone recording into a WAV the router accepts.
// Why this approach and not MediaSource: docs/adr/0021-ui-streaming-playback.md.

export const MIME = {
  wav: 'audio/wav',
  pcm: 'audio/pcm',
  mp3: 'audio/mpeg',
  opus: 'audio/ogg',
  aac: 'audio/aac',
  flac: 'audio/flac',
};
export const EXTENSION = { wav: 'wav', pcm: 'pcm', mp3: 'mp3', opus: 'ogg', aac: 'aac', flac: 'flac' };
/** Formats played while they stream; the others play once complete. */
export const STREAMED = new Set(['wav']);
// seconds of audio scheduled ahead of "now" before the first chunk plays (absorbs jitter)
const LEAD = 0.08;
// the rate recorded clips are stored at: enough for speech, and a 30 s clip stays under 1.5 MB
export const RECORD_RATE = 24000;

export function base64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function concatBytes(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const tag = (bytes, at) => String.fromCharCode(...bytes.subarray(at, at + 4));

/** The WAV header up to the start of the samples, or null while more bytes are needed. */
export function parseWavHeader(bytes) {
  if (bytes.length < 12) return null;
  if (tag(bytes, 0) !== 'RIFF' || tag(bytes, 8) !== 'WAVE') throw new Error('the stream is not WAV');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt = null;
  let pos = 12;
  while (pos + 8 <= bytes.length) {
    const id = tag(bytes, pos);
    const size = view.getUint32(pos + 4, true);
    if (id === 'data') {
      if (!fmt) throw new Error('WAV data before its format');
      return { ...fmt, dataOffset: pos + 8, dataSizeOffset: pos + 4 };
    }
    if (pos + 8 + size > bytes.length) return null;
    if (id === 'fmt ') {
      fmt = {
        channels: view.getUint16(pos + 10, true),
        sampleRate: view.getUint32(pos + 12, true),
        bitsPerSample: view.getUint16(pos + 22, true),
      };
    }
    pos += 8 + size + (size % 2);
  }
  return null;
}

/** Plays 16-bit little-endian PCM as it arrives: each chunk is scheduled right after the previous one. */
export class PcmPlayer {
  constructor(ctx, sampleRate, channels = 1) {
    this.ctx = ctx;
    this.sampleRate = sampleRate;
    this.channels = channels;
    this.cursor = 0;
    this.frames = 0;
    this.carry = null;
    this.sources = new Set();
    this.firstStart = null; // context time the first chunk starts playing
  }

  push(bytes) {
    if (this.carry) {
      bytes = concatBytes([this.carry, bytes]);
      this.carry = null;
    }
    const frameBytes = 2 * this.channels;
    const usable = bytes.length - (bytes.length % frameBytes);
    if (usable < bytes.length) this.carry = bytes.slice(usable);
    const frames = usable / frameBytes;
    if (!frames) return;
    const buffer = this.ctx.createBuffer(this.channels, frames, this.sampleRate);
    const view = new DataView(bytes.buffer, bytes.byteOffset, usable);
    for (let c = 0; c < this.channels; c++) {
      const out = buffer.getChannelData(c);
      for (let i = 0; i < frames; i++) out[i] = view.getInt16((i * this.channels + c) * 2, true) / 32768;
    }
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.ctx.destination);
    const at = Math.max(this.cursor, this.ctx.currentTime + LEAD);
    source.start(at);
    if (this.firstStart === null) this.firstStart = at;
    this.cursor = at + buffer.duration;
    this.frames += frames;
    this.sources.add(source);
    source.onended = () => this.sources.delete(source);
  }

  get seconds() {
    return this.frames / this.sampleRate;
  }

  stop() {
    for (const s of this.sources) s.stop();
    this.sources.clear();
  }
}

/** A WAV stream (header first, then samples; the sizes say "unknown") fed to a PcmPlayer. */
export class WavStreamPlayer {
  constructor(ctx) {
    this.ctx = ctx;
    this.head = new Uint8Array(0);
    this.pcm = null;
  }

  push(bytes) {
    if (this.pcm) {
      this.pcm.push(bytes);
      return;
    }
    this.head = concatBytes([this.head, bytes]);
    const header = parseWavHeader(this.head);
    if (!header) return;
    if (header.bitsPerSample !== 16) throw new Error(`cannot stream ${header.bitsPerSample}-bit WAV`);
    this.pcm = new PcmPlayer(this.ctx, header.sampleRate, header.channels);
    this.pcm.push(this.head.subarray(header.dataOffset));
  }

  get playing() {
    return Boolean(this.pcm && this.pcm.frames);
  }

  get seconds() {
    return this.pcm ? this.pcm.seconds : 0;
  }

  stop() {
    this.pcm?.stop();
  }
}

/** The streamed WAV with its real sizes written in (a streamed header cannot know them). */
export function finalizeWav(bytes) {
  const header = parseWavHeader(bytes);
  if (!header) throw new Error('incomplete WAV');
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  view.setUint32(4, out.length - 8, true);
  view.setUint32(header.dataSizeOffset, out.length - header.dataOffset, true);
  return { bytes: out, seconds: (out.length - header.dataOffset) / (2 * header.channels) / header.sampleRate };
}

function wavHeader(dataBytes, sampleRate, channels) {
  const header = new Uint8Array(44);
  const view = new DataView(header.buffer);
  const ascii = (at, s) => [...s].forEach((ch, i) => (header[at + i] = ch.charCodeAt(0)));
  ascii(0, 'RIFF');
  view.setUint32(4, 36 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, channels, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * channels * 2, true);
  view.setUint16(32, channels * 2, true);
  view.setUint16(34, 16, true);
  ascii(36, 'data');
  view.setUint32(40, dataBytes, true);
  return header;
}

/** Raw s16le PCM wrapped as WAV, so the <audio> element can play it. */
export function pcmToWav(pcm, sampleRate, channels = 1) {
  return concatBytes([wavHeader(pcm.length, sampleRate, channels), pcm]);
}

/** Float samples (-1..1, mono) as a 16-bit PCM WAV file. */
export function encodeWav(samples, sampleRate) {
  const pcm = new Uint8Array(samples.length * 2);
  const view = new DataView(pcm.buffer);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return pcmToWav(pcm, sampleRate, 1);
}

/** Decode any clip the browser can read (a MediaRecorder's WebM/Opus, WAV, FLAC). */
export async function decodeClip(blob) {
  const data = await blob.arrayBuffer();
  return new OfflineAudioContext(1, 1, 44100).decodeAudioData(data);
}

/** A decoded clip as a mono 16-bit WAV at `rate`: what the router accepts (WAV or FLAC only). */
export async function toWav(decoded, rate = RECORD_RATE) {
  const frames = Math.max(1, Math.ceil(decoded.duration * rate));
  const offline = new OfflineAudioContext(1, frames, rate); // one output channel: down-mixed to mono
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const rendered = await offline.startRendering();
  return encodeWav(rendered.getChannelData(0), rate);
}
