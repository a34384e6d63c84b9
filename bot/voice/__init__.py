"""Voice messages transcribed by Sisong itself (issue 12); see docs/voice.md.

WeChat stopped filling a voice message's ``Recognition`` in 2023. When a
recogniser is configured (``SISONG_ASR_*``), the pipeline hands such a message
to the task queue (``task``), which downloads the clip, decodes it (``audio``,
PyAV), transcribes it (``engines``: sherpa-onnx locally or Tencent Cloud) under
the rules in ``service``, and routes the words exactly like typed text.
"""
