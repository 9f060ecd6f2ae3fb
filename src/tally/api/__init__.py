"""The HTTP facades: one module per API family, each thin (parse, validate, call the engine,
shape the answer) and each rendering errors in its vendor's shape.

To add an API, write a module with a :class:`tally.api.base.Facade` subclass and list it in
:data:`tally.api.app.FACADES`.
"""
