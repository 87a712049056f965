"""`mailgitops check`: probes of a provider's servers over the network (DNS, TCP, TLS,
STARTTLS, greetings, capabilities, authentication mechanisms, and optionally a login), as
Creatio's "check connection" and Thunderbird's account setup do (SPEC §8).

Everything a server sends is untrusted: reads are bounded in size and time (wire.py), and its
text is escaped and cut before it reaches any output (results.clean)."""
