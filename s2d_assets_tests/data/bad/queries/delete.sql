DELETE FROM llm_cache
