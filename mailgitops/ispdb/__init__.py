"""Import Thunderbird ISPDB `clientConfig` files as provider files (`import-ispdb`): read one
file safely (read.py), map it to the provider model or say why it cannot be (parse.py), write
it as hand-written YAML (write.py), and import a batch (batch.py). The decisions behind the
mapping are in parse.py and docs/ispdb.md."""
