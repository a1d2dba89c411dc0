"""RecBole's distributed data parallel training (DDP) for every model, on CPUs and GPUs.

RecBole 1.2.1 starts ``nproc`` processes per machine (``recbole.quick_start.run``: ``nproc``,
``world_size``, ``ip``, ``port``, ``group_offset``), and each builds its ``Config`` with a
``local_rank``. Its ``Config._init_device`` then always asks for ``nccl`` and a GPU per process, its
trainer hands ``DistributedDataParallel`` a GPU id, its ``DistributedSampler`` repeats samples to
even out the ranks (the evaluation counts them twice) and its gathering of evaluation results weighs
each rank by its number of batches times four. The hooks (``hooks/config.py``, ``hooks/trainer.py``,
``hooks/dataloader.py``, ``hooks/evaluator.py``) call the plain functions here instead:

* :func:`init_device`: the process group with ``ddp_backend`` (``gloo`` on CPUs, ``nccl`` on GPUs by
  default), one GPU per process or the CPU, RecBole's rank conventions.
* :func:`wrap_model`: ``DistributedDataParallel`` as RecBole builds it, without a device id on a CPU.
* Training batches (:func:`train_batches`): every rank draws the same epoch order from the loader's
  generator (the order one process would train on), cuts it into the batches one process would
  take (``train_batch_size``, in samples or, for whole-sequence windows, in targets), and trains on
  its own contiguous part of each: the ranks train on disjoint parts of the epoch, all ranks take the
  same number of steps, and the batch of all ranks together is one process's batch. ``session``
  mode shards whole sessions instead: each rank takes every world-size-th row of the
  session-parallel layout (:func:`shard_session_rows`), and a row follows whole sessions.
* Gradients: DDP averages the ranks' gradients, as RecBole's trainer sets it up. A plugin model's
  loss is a mean over its batch's targets; each batch carries the rank's share of the targets
  (:data:`LOSS_SHARE_FIELD`), by which the model scales its loss (:func:`scaled_loss`), so the average
  is the mean over all ranks' targets: one process's gradient on their batch, also when the parts
  hold different numbers of targets (windows of different lengths, a last batch that does not split
  evenly).
* Evaluation (:func:`eval_batches`, :func:`gather_collected`): each rank evaluates a contiguous part
  of the evaluation data, every sample exactly once, and the collected rows of all ranks are
  gathered before the metrics are computed: every rank computes the metrics one process would.
* :func:`load_best_model`: rank 0's checkpoint, read by rank 0 and broadcast (only rank 0 writes
  checkpoints, and another machine cannot read its disk).
"""

import os

import torch
import torch.distributed as dist

from recbole_ext.errors import ConfigError

BACKENDS = ("gloo", "nccl")
# a distributed training batch's field: the rank's share of the batch's targets times the world size
# (1 when the ranks hold equal parts); a plugin model multiplies its mean loss by it (:func:`scaled_loss`)
LOSS_SHARE_FIELD = "ddp_loss_share"
# the fields of RecBole's evaluation collector that hold one row per evaluated sample; the rest
# (data.num_items, data.count_items, ...) describe the training data, the same on every rank
_PER_SAMPLE_PREFIXES = ("rec.",)
_PER_SAMPLE_FIELDS = ("data.label",)


# ---------------------------------------------------------------- process group and device


def is_distributed(config):
    """True in a process RecBole started for distributed training (its config has a ``local_rank``)."""
    return not config["single_spec"]


def rank_and_world(config):
    """``(global rank, world size)`` of this process."""
    return config["local_rank"] + config["offset"], config["world_size"]


def choose_backend(requested, on_gpu):
    """The process group's backend: ``requested`` (the ``ddp_backend`` key) or, when it is None,
    ``nccl`` for GPUs and ``gloo`` for the CPU."""
    if requested is None:
        return "nccl" if on_gpu else "gloo"
    if requested not in BACKENDS:
        raise ConfigError(f"ddp_backend: {requested!r} is not allowed; use one of {list(BACKENDS)} or ~ (gloo "
                          "on the CPU, nccl on GPUs)")
    if requested == "nccl" and not on_gpu:
        raise ConfigError("ddp_backend: 'nccl' needs a GPU per process, but this run trains on the CPU (no CUDA "
                          "device, or gpu_id is empty); use ddp_backend: gloo or leave it ~")
    return requested


def init_device(values):
    """RecBole's ``Config._init_device`` for a process of a distributed run (``values`` is the
    config's ``final_config_dict``, which holds ``local_rank``): the device, the process group and
    RecBole's conventions for ranks other than 0.

    RecBole's own asserts one GPU id per process and always starts ``nccl``. Here the run trains on
    GPU ``local_rank`` when CUDA is available, ``use_gpu`` is on and ``gpu_id`` names GPUs (one per
    process: a :class:`ConfigError` otherwise), else on the CPU; the backend is ``ddp_backend``
    (:func:`choose_backend`). On the CPU each process gets an equal share of the cores as torch
    threads (unless ``OMP_NUM_THREADS`` is set), as torchrun does. A process group that is already
    started (by the caller, for these very ranks) is kept."""
    gpu_id = values["gpu_id"]
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
    values["gpu_id"] = gpu_id
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id  # as RecBole does, before CUDA is first asked
    local_rank, nproc = values["local_rank"], values["nproc"]
    on_gpu = bool(gpu_id) and values.get("use_gpu", True) is not False and torch.cuda.is_available()
    if on_gpu and len(gpu_id.split(",")) < nproc:
        raise ConfigError(f"nproc: {nproc} processes need {nproc} GPUs on this machine, but gpu_id is {gpu_id!r}; "
                          "name one GPU per process in gpu_id (e.g. '0,1'), or gpu_id: '' to train on the CPU")
    backend = choose_backend(values.get("ddp_backend"), on_gpu)
    rank, world_size = local_rank + values["offset"], values["world_size"]
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} (local_rank {local_rank} + group_offset {values['offset']}) is not below "
                          f"world_size {world_size}")
    if on_gpu:
        torch.cuda.set_device(local_rank)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                init_method=f"tcp://{values['ip']}:{values['port']}")
    elif (dist.get_rank(), dist.get_world_size()) != (rank, world_size):
        raise ConfigError(f"a process group of rank {dist.get_rank()} in {dist.get_world_size()} is running, but "
                          f"this config asks for rank {rank} in {world_size}")
    values["device"] = torch.device("cuda", local_rank) if on_gpu else torch.device("cpu")
    values["ddp_backend"] = backend
    values["single_spec"] = False
    if local_rank != 0:  # RecBole's: one process per machine logs
        values["state"] = "error"
        values["show_progress"] = False
        values["verbose"] = False


def wrap_model(model, config):
    """``(model, DistributedDataParallel wrapper)`` as RecBole's ``AbstractTrainer`` builds them: on a
    GPU with synchronised batch norm and the process's device id, on the CPU without either (torch
    refuses a device id for a CPU module, and its synchronised batch norm needs a GPU)."""
    from torch.nn.parallel import DistributedDataParallel

    if torch.device(config["device"]).type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, DistributedDataParallel(model, device_ids=[config["local_rank"]])
    return model, DistributedDataParallel(model)


# ---------------------------------------------------------------- training batches


def shard(n, rank, world_size):
    """``(start, stop)`` of rank ``rank``'s contiguous part of ``n`` items: parts differ by at most
    one item, the lower ranks take the larger ones."""
    size, extra = divmod(n, world_size)
    start = rank * size + min(rank, extra)
    return start, start + size + (rank < extra)


def global_batches(n, step, world_size):
    """``(start, stop)`` of each batch of an epoch of ``n`` samples, ``step`` a batch, as one process
    takes them, except that a last batch too small to give every rank a sample is added to the one
    before (every rank must take part in every step: a rank with no sample would have no loss)."""
    if n < world_size:
        raise ValueError(f"{n} training samples cannot be shared by {world_size} ranks")
    step = max(int(step), world_size)
    bounds = [(start, min(start + step, n)) for start in range(0, n, step)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < world_size:
        (first, _), (_, stop) = bounds[-2], bounds.pop()
        bounds[-1] = (first, stop)
    return bounds


def epoch_order(n, shuffle, generator):
    """The order of an epoch's samples, drawn from the loader's ``generator`` exactly as torch's
    ``DataLoader`` draws it for one process (a base seed, then ``RandomSampler``'s permutation), or
    None for the stored order. Every rank holds the same generator (RecBole seeds it with ``seed``),
    so every rank draws the same order."""
    if not shuffle:
        return None
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    return torch.randperm(n, generator=generator)


def global_step(loader):
    """Samples per batch for all ranks together: what one process takes (RecBole divides the
    loader's ``step`` by the world size; the hook on ``_init_batch_size_and_step`` keeps it first)."""
    return getattr(loader, "global_step", None) or loader.step * loader.config["world_size"]


def train_batches(loader, tensors=None, batch_device=None):
    """This rank's training batches of ``loader`` for one epoch (see the module docstring).

    ``tensors`` is the split the loader serves as slices (``data/sequence.py``), else None: RecBole's
    ``collate_fn`` then builds each batch from the sample indices (negative sampling included).
    A ``session`` split (already sharded by rows, :func:`shard_session_rows`) goes in order, one block
    a batch, as in one process."""
    from recbole.data.interaction import Interaction

    from recbole_ext.data.sequence import SESSION_BLOCK_FIELD, sliced_batches

    if isinstance(tensors, Interaction) and SESSION_BLOCK_FIELD in tensors:
        yield from sliced_batches(tensors, loader.step, False, loader.generator, batch_device)
        return
    if tensors is None and SESSION_BLOCK_FIELD in getattr(loader._dataset, "inter_feat", ()):
        raise ConfigError("train_mode: session trains on several processes only from its session blocks as they "
                          "are built (no transform, no train_neg_sample_args)")
    rank, world_size = rank_and_world(loader.config)
    n = len(tensors) if tensors is not None else loader.sample_size
    order = epoch_order(n, loader.shuffle, loader.generator)
    if order is None:
        order = torch.arange(n)
    targets = _targets_per_sample(loader, tensors)
    for start, stop in global_batches(n, global_step(loader), world_size):
        low, high = shard(stop - start, rank, world_size)
        index = order[start + low : start + high]
        if targets is None:
            share = (high - low) * world_size / (stop - start)
        else:
            share = float(targets[index].sum()) * world_size / float(targets[order[start:stop]].sum())
        if tensors is None:
            batch = loader.collate_fn(index.tolist())
        elif not isinstance(tensors, Interaction):
            batch = tensors[index]  # a dataset of lean samples or windows: the batch gathered now
        else:
            fields = tensors.interaction
            on = next(iter(fields.values())).device
            batch = {name: values[index.to(on)] for name, values in fields.items()}
            if batch_device is not None:
                batch = {name: values.to(batch_device, non_blocking=True) for name, values in batch.items()}
            batch = Interaction(batch)
        yield with_loss_share(batch, share)


def with_loss_share(batch, share):
    """``batch`` (an ``Interaction``, or the tuple RecBole's collate gives when it samples negatives,
    the ``Interaction`` first) with :data:`LOSS_SHARE_FIELD`: ``share`` on every row."""
    from recbole.data.interaction import Interaction

    interaction = batch[0] if isinstance(batch, tuple) else batch
    if isinstance(interaction, Interaction):
        device = next(iter(interaction.interaction.values())).device
        interaction.update(Interaction({LOSS_SHARE_FIELD: torch.full((len(interaction),), share, device=device)}))
    return batch


def _targets_per_sample(loader, tensors):
    """Training targets per sample of a whole-sequence window split (``[samples]``), or None where
    every sample is one target."""
    from recbole.data.interaction import Interaction

    from recbole_ext.data.lean import LeanWindows
    from recbole_ext.data.sequence import target_list_field

    if tensors is not None and isinstance(getattr(tensors, "inter_feat", None), LeanWindows):
        return tensors.inter_feat.lengths
    field = target_list_field(loader.config)
    if not isinstance(tensors, Interaction) or field not in tensors:
        return None
    return (tensors[field] > 0).sum(dim=tuple(range(1, tensors[field].dim()))).cpu()


def scaled_loss(loss, interaction):
    """A plugin model's mean loss over its batch, times the rank's share of the targets of all ranks'
    batch (:data:`LOSS_SHARE_FIELD`; absent in one process): DDP's average over the ranks is then the
    mean over all their targets."""
    if LOSS_SHARE_FIELD not in interaction:
        return loss
    return loss * interaction[LOSS_SHARE_FIELD][0]


def shard_session_rows(tensors, config):
    """A ``session`` split's blocks ``[blocks, steps, rows]`` with only this rank's rows (every
    world-size-th, from its rank on): a row of GRU4Rec's session-parallel layout follows whole
    sessions, one after another, so the ranks train on disjoint sessions, every rank on every block
    (the same number of steps). All ranks together hold the rows one process would, and
    :data:`LOSS_SHARE_FIELD` (the rank's rows times the world size over all rows) makes the ranks'
    averaged per-row loss that process's. Other data is returned as it is."""
    from recbole.data.interaction import Interaction

    from recbole_ext.data.sequence import SESSION_BLOCK_FIELD

    if not isinstance(tensors, Interaction) or not is_distributed(config) or SESSION_BLOCK_FIELD not in tensors:
        return tensors  # nothing to shard, or lean samples or windows (a dataset: sharded per batch)
    rank, world_size = rank_and_world(config)
    fields = tensors.interaction
    rows = next(values.shape[2] for values in fields.values() if values.dim() == 3)
    if rows < world_size:
        raise ConfigError(f"train_mode: session with {world_size} processes needs train_batch_size >= {world_size} "
                          f"rows (one per process at least), got {rows}")
    sharded = {}
    for name, values in fields.items():
        # every world_size-th row: the first sessions of an epoch fill the first rows, so each rank
        # gets its share of them (and of the rows left idle when there are more rows than sessions)
        part = values[:, :, rank::world_size].contiguous() if values.dim() == 3 else values
        sharded[name] = part.pin_memory() if values.is_pinned() else part
    # the model's per-row loss is divided by this rank's rows; a share makes it all ranks' rows
    blocks = len(fields[SESSION_BLOCK_FIELD])
    on = fields[SESSION_BLOCK_FIELD].device
    mine = len(range(rank, rows, world_size))
    sharded[LOSS_SHARE_FIELD] = torch.full((blocks,), mine * world_size / rows, device=on)
    return Interaction(sharded)


# ---------------------------------------------------------------- evaluation


def eval_batches(loader):
    """This rank's evaluation batches: a contiguous part of the samples (every sample on exactly one
    rank, in order, so the gathered rows are one process's rows), in batches of the loader's step."""
    rank, world_size = rank_and_world(loader.config)
    start, stop = shard(loader.sample_size, rank, world_size)
    for low in range(start, stop, loader.step):
        yield loader.collate_fn(list(range(low, min(low + loader.step, stop))))


def gather_collected(data):
    """Gather the per-sample fields of a collector's data (``{name: value}``, on every rank) in rank
    order, in place: every rank then holds the rows one process would have collected."""
    mine = {name: value.cpu() for name, value in data.items() if _per_sample(name) and isinstance(value, torch.Tensor)}
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    for name in sorted({name for part in gathered for name in part}):  # a rank with no samples has none
        data[name] = torch.cat([part[name] for part in gathered if name in part], dim=0)


def _per_sample(name):
    return name.startswith(_PER_SAMPLE_PREFIXES) or name in _PER_SAMPLE_FIELDS


def load_best_model(trainer, model_file):
    """RecBole's ``load_best_model`` for every rank: rank 0 reads the checkpoint it wrote (weights
    only) and every rank takes its weights by broadcast."""
    model = trainer.model
    rank = dist.get_rank()
    other = [None]
    if rank == 0:
        checkpoint = torch.load(model_file, map_location=trainer.device, weights_only=True)
        model.load_state_dict(checkpoint["state_dict"])
        other[0] = checkpoint.get("other_parameter")
        trainer.logger.info(f"Loading model structure and parameters from {model_file}")
    for value in model.state_dict().values():
        dist.broadcast(value, src=0)
    dist.broadcast_object_list(other, src=0)
    model.load_other_parameter(other[0])
