"""Finding the article that answers a question: index, query analysis, ranking, FAQ matching."""
