"""Measuring answer quality and speed on an evaluation set (used by bench/qa_eval.py and the tests)."""
