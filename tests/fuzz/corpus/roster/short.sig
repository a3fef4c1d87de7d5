algorithm: ed25519
signer: abc
signature: AAAA
