"""A machine read over ssh: the agent that runs there (``agent``, built by ``pack`` from the
live reader's own modules), and the JSON lines between it and mdtui (``wire``)."""
