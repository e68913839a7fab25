"""Indexing stage: chunking, embedding, keyword index, word-piece vectors, the index artifact and its build."""
