"""polysemy.llm"""
