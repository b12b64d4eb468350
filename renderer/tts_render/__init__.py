"""The TtsJob renderer: the program each pod of a TtsJob's Indexed Job runs (docs/adr/0050-ttsjob-execution.md).

It renders its shard of the plan through the router's speech API into chunk files on the job's
volume, then joins every chapter whose chunks are all done. Pure parts (``loudness``, ``join``,
``encode``, the retry policy in ``speech``, the digests in ``chapters``) do no I/O; ``files`` and
``chapters`` own the volume, ``speech`` the router, ``__main__`` the order of things."""
