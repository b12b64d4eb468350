"""``POST /v1/audio/captions``: the words of a synthesis (``speech.audio.done``'s ``words``, asked for
with ``"timestamps": "word"``) as WebVTT or SubRip captions. Pure formatting through
``tts_crds.captions``: no model is involved, so the captions match the audio the client already
has (piper never says a sentence twice with the same timing). ADR 0045."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from tts_crds import captions

from ..deps import Authenticated

router = APIRouter(tags=["speech"], dependencies=[Authenticated])


@router.post(
    "/v1/audio/captions",
    response_class=PlainTextResponse,
    responses={200: {"content": {m.split(";")[0]: {} for m in captions.MEDIA_TYPES.values()}}},
)
async def create_captions(body: captions.CaptionsRequest) -> PlainTextResponse:
    return PlainTextResponse(captions.render(body), media_type=captions.MEDIA_TYPES[body.format])
