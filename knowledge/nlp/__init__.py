"""Chinese text handling for the knowledge base: numbers, sentences, tokens, synonyms, homophones, question cues."""
