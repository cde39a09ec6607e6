"""Which samples each rank trains on, in an order a resumed run can pick up mid-epoch."""

from __future__ import annotations

from torch.utils.data import DistributedSampler, Sampler


class ResumableShardBatches(Sampler):
    """Per-rank batches of dataset indices for one epoch, starting at batch ``start``.

    The index order is ``DistributedSampler``'s (a seeded per-epoch shuffle, rank r takes every
    world-th index, so ranks see disjoint shards); we drop the last partial batch so every step has
    the same global batch, and skip the batches a resumed run already trained on.
    """

    def __init__(self, dataset_len: int, batch_size: int, rank: int, world_size: int, seed: int):
        self.dataset_len = dataset_len
        self.batch_size = batch_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.epoch, self.start = 0, 0
        self.batches_per_epoch = (dataset_len // world_size) // batch_size
        self.history: list[int] | None = None  # set to [] to record every index handed out (debugging)

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def indices(self, epoch: int) -> list[int]:
        shard = DistributedSampler(range(self.dataset_len), num_replicas=self.world_size, rank=self.rank,
                                   shuffle=True, seed=self.seed, drop_last=True)
        shard.set_epoch(epoch)
        return list(shard)

    def __iter__(self):
        order = self.indices(self.epoch)
        for b in range(self.start, self.batches_per_epoch):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.history is not None:
                self.history.extend(batch)
            yield batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start
