"""The offline stack: CF/UAA, BOSH and Vault emulators, world files, the embedded AWS
engine and the scenario runner. Nothing here needs Docker or the internet."""
