"""`PaseoClient` over the paseo CLI (PASEO_GATEWAY_TRANSPORT=cli): one child process per call.

- `client.py`: `CliPaseoClient`, each interface method as CLI calls, and how a turn is followed
  (`attach` for live output, a blocking `send`/`wait` for its end, `logs` for what attach lost).
- `versions.py`: what each CLI release takes (versions as data), chosen from `paseo --version`.
- `process.py`: running children: argv lists, own process group, bounded output, always reaped.
- `output.py`: what the CLI printed, as typed results or a `PaseoError`.
- `shapes.py`: the CLI's JSON shapes and how each maps to `app.paseo.types`.
- `attach_stream.py`: `paseo attach` output as turn events.
- `attach_gap.py`: what attach loses right after its replay, found and put back with a
  second attach (first prompts and resumed turns).
- `transcript.py`: reading a `paseo logs` transcript.

How Paseo records a prompt is shared with the daemon transport: `app.paseo.prompts`.
"""
