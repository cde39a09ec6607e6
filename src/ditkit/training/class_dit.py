"""The class DiT run family (``families.py``): a ``DiT`` on labels (or unconditional), the default of
``ditkit train``. Its parts are ``build.py``'s: ``open_data``, ``model_config_for``, ``load_init_weights``; the
loss is ``DiffusionObjective``; checkpoints are ditkit DiT folders (``state.py``); the periodic evaluation is
the FID of the EMA's samples."""

from __future__ import annotations

from ..models import create_model
from .build import Data, load_init_weights, model_config_for, open_data
from .hooks import SampleGridHook
from .step import DiffusionObjective


class ClassDiTRun:
    """A DiT on the data's labels: ``--model`` a preset or a config file, no ``--text-encoder``."""

    name = "class-dit"
    trains_dit = True  # the module is a ditkit DiT: --dispersive-loss reads its blocks
    export = None      # checkpoints are ditkit DiT folders (state.py's save_pretrained)

    def __init__(self, config):
        self.config = config
        self.data: Data | None = None

    @classmethod
    def claims(cls, config) -> bool:
        """Any run no other family claims (the registry's last entry)."""
        return True

    def open(self, config, d) -> Data:
        self.data = open_data(config, d)
        return self.data

    def model_config(self, config, resumed):
        return model_config_for(config, self.data, resumed)

    def create_model(self, model_config):
        return create_model(model_config)

    def load_init(self, model, config, resumed) -> list[str]:
        """``--init-from`` (a fresh run only: a resumed one has its own weights): notes on what was adapted."""
        return load_init_weights(model, config.init_from) if config.init_from and resumed is None else []

    def objective(self, diffusion) -> DiffusionObjective:
        return DiffusionObjective(diffusion)

    def extra(self) -> dict:
        return {}

    def grid_hook(self, run_dir: str, codec, config) -> SampleGridHook:
        return SampleGridHook(run_dir, codec, config)

    def eval_fn(self, config, data: Data):
        """FID of the EMA's samples against the training data, and class accuracy where a bundled classifier
        reads the classes."""
        from ..evaluation import make_training_eval_fn

        return make_training_eval_fn(config.data, config.fid_samples, image_size=config.image_size,
                                     codec=config.vae, seed=config.seed, progress=False,
                                     diffusion_config=config.diffusion.to_dict())

    def save_cache(self) -> None:  # nothing is cached
        pass
