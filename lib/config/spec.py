"""One config key, declared once (``Key``): its default, help, allowed values, and how resuming and the original's
configs treat it. The tables of keys are ``lib.config.keys_run``, ``keys_training`` and ``keys_search``;
``lib.config.table`` derives everything else from them."""
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

# What a key of no choices, range or rule may be, from its default's type.
_TYPE_WORDS = {'int': 'an integer', 'float': 'a number', 'str': 'a string', 'list': 'a list', 'tuple': 'a tuple'}


@dataclass(frozen=True)
class Key:
    """One config key.

    name: dotted (``DATASET.BATCH_SIZE``); a section exists because its keys do.
    default: also the key's type: yaml and ``KEY VALUE`` values must have it (an int fills a float, a list a tuple;
        a None default takes any value).
    help: one line, shown in docs/config.md.
    choices: the values it may take.
    check: ``(test, what the value must be)`` for a range; a value the test refuses is an error with those words.
    rule: what the value must be, in words, where the check is code of its own (a named rule of
        ``lib.config.checks`` or the module that reads the key); the page shows it before choices and range.
    resume: a resumed run (AUTO_RESUME) may set it differently from the checkpoint's config.
    unread: why nothing reads it: a key of the original's, accepted so that its configs load, with a warning.
    aliases: the original's top-level names for it (``MODEL_SELECTION`` for ``NET.SELECTION``).
    """
    name: str
    default: Any
    help: str
    choices: Tuple = ()
    check: Optional[Tuple[Callable[[Any], bool], str]] = None
    rule: str = ''
    resume: bool = False
    unread: str = ''
    aliases: Tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        """What the key may be set to, in words: its rule, choices or range (first found), else its type."""
        if self.rule:
            return self.rule
        if self.choices:
            return ', '.join(self.choices)
        if self.check is not None:
            return self.check[1]
        if isinstance(self.default, bool):
            return 'True or False'
        if self.default is None:
            return 'None or a value'
        return _TYPE_WORDS.get(type(self.default).__name__, type(self.default).__name__)
