"""Database access for the knowledge base: generation, index, FAQ, synonyms, unanswered queue."""
