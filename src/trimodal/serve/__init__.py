"""``trimodal serve``: an OpenAI-compatible HTTP API over a trained checkpoint.

The data flow of a request: :mod:`~trimodal.serve.payload` reads the JSON fields (each error
names its field), :mod:`~trimodal.serve.media` decodes images and audio sent inline (limits,
never a path), :mod:`~trimodal.serve.engine` runs the model (questions and embeddings through
:mod:`~trimodal.serve.batcher`'s dynamic batches; generation in threads of its own), and
:mod:`~trimodal.serve.app` shapes the replies as OpenAI's. :mod:`~trimodal.serve.gallery`
holds the search index that ``trimodal index`` builds.
"""
