"""polysemy: provable feature recovery by sparse autoencoders, tested.

Subpackages:
- ``polysemy.simulate``: worlds (dictionaries, supports, coefficients) and fast sample streams.
- ``polysemy.theory``: identifiability conditions, the theorem's bands, recovery metrics.
- ``polysemy.sae``: SAE models, the one trainer and its registered methods, checkpoints.
- ``polysemy.llm``: activations from real language models and the LLM benchmark.
- ``polysemy.experiments``: declarative sweeps, their runner and store, the paper's figures.
"""

__version__ = "0.1.0"
