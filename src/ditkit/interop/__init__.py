"""Bridges to other libraries' checkpoint layouts, both ways, below ``checkpoints`` (whose loader reads them).

- ``diffusers``: ditkit DiT ↔ a diffusers ``DiTPipeline`` folder (``ditkit export``): key layout both ways, DDIM
  scheduler with the training betas, the named VAE, null class padded to 1000; refuses blocks diffusers lacks;
  ``read_folder`` (a folder → our config fields + state dict), ``use_dit_timestep_frequencies``
"""
