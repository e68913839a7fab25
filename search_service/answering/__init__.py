"""Answering stage: extractive answers with citations, abstention, and generative answers through an LLM."""
