"""The BM25 passage index: built once with bm25s at import time, stored as bytes, scored with numpy.

bm25s computes the eager BM25 score matrix (one sparse column per term). We
keep exactly that matrix and the vocabulary, serialized as a numpy archive
(no pickle), so any worker can load it from the database in milliseconds and
a query is a handful of array slices. Scoring weights each query term, which
lets colloquial synonyms count a little less than the household's own words.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import bm25s
import numpy as np

K1, B = 1.2, 0.75
FORMAT = 1


class PassageIndex:
    def __init__(
        self,
        vocab: dict[str, int],
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        passage_ids: np.ndarray,
        fingerprint: str,
    ) -> None:
        self.vocab = vocab
        self.data = data
        self.indices = indices
        self.indptr = indptr
        self.passage_ids = passage_ids
        self.fingerprint = fingerprint
        self.num_docs = len(passage_ids)
        df = np.diff(indptr).astype(np.float64)
        self.idf = np.log(1.0 + (self.num_docs - df + 0.5) / (df + 0.5)) if self.num_docs else df
        # Asked several times per question (unknown words' weight, the excerpt's unit): once per index.
        self._max_idf = float(self.idf.max()) if len(self.idf) else 1.0
        self._idf_list: list[float] = self.idf.tolist()

    # -- building and storing ------------------------------------------------

    @classmethod
    def build(cls, corpus: Sequence[list[str]], passage_ids: Sequence[int], fingerprint: str) -> "PassageIndex":
        if not corpus:
            empty = np.zeros(0)
            return cls({}, empty.astype(np.float32), empty.astype(np.int32), np.zeros(1, np.int64),
                       np.asarray(passage_ids, dtype=np.int64), fingerprint)
        model = bm25s.BM25(k1=K1, b=B, method="lucene")
        # bm25s needs at least one token per document; "" is its own empty-token marker.
        model.index([tokens or [""] for tokens in corpus], show_progress=False)
        scores = model.scores
        return cls(
            {term: int(i) for term, i in model.vocab_dict.items() if term},
            np.asarray(scores["data"], dtype=np.float32),
            np.asarray(scores["indices"], dtype=np.int32),
            np.asarray(scores["indptr"], dtype=np.int64),
            np.asarray(passage_ids, dtype=np.int64),
            fingerprint,
        )

    def to_bytes(self) -> bytes:
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        meta = {"format": FORMAT, "fingerprint": self.fingerprint, "k1": K1, "b": B}
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            meta=np.array(json.dumps(meta)),
            terms=np.array(terms, dtype=str) if terms else np.zeros(0, dtype="<U1"),
            term_ids=np.array([self.vocab[t] for t in terms], dtype=np.int64),
            data=self.data,
            indices=self.indices,
            indptr=self.indptr,
            passage_ids=self.passage_ids,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> "PassageIndex":
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"unsupported index format {meta.get('format')}")
            vocab = dict(zip(archive["terms"].tolist(), archive["term_ids"].tolist()))
            return cls(vocab, archive["data"], archive["indices"], archive["indptr"],
                       archive["passage_ids"], meta["fingerprint"])

    # -- querying -------------------------------------------------------------

    def term_id(self, term: str) -> int | None:
        return self.vocab.get(term)

    def term_idf(self, term: str) -> float:
        tid = self.vocab.get(term)
        return self._idf_list[tid] if tid is not None else 0.0

    def postings(self, tid: int) -> np.ndarray:
        return self.indices[self.indptr[tid]:self.indptr[tid + 1]]

    def score(self, weights: dict[int, float]) -> np.ndarray:
        """Weighted BM25 score of every passage."""
        scores = np.zeros(self.num_docs, dtype=np.float32)
        for tid, weight in weights.items():
            start, end = self.indptr[tid], self.indptr[tid + 1]
            # Passage ids are unique within a term's column, so fancy += is exact.
            scores[self.indices[start:end]] += weight * self.data[start:end]
        return scores

    def max_idf(self) -> float:
        """The rarest term's idf: the unit weights are measured in (precomputed: the index never changes)."""
        return self._max_idf
