"""A Vocos-style neural vocoder (Siuzdenko et al. 2023) in Flax NNX: the project's mel images ->
waveforms.

Why this design: a ConvNeXt backbone runs at the mel's frame rate (one vector per frame, no
upsampling stack) and predicts, per frame, the STFT log-magnitude and phase of the output; an
inverse STFT (the project's own, audio/inverse.py) turns them into samples. Nearly all the work is
dense matrix products over a few hundred frames per clip, the cheapest kind on a CPU, where a
HiFi-GAN generator upsamples through transposed convolutions to every output sample (hundreds of
times the frames). So it trains in minutes and runs far faster than real time on 2 cores.

The STFT of the head is the dataset's own (`MelParams`: its n_fft, hop and centred frames), so
one frame of the mel image is one frame of the output and any resolution and sample rate of
data_prep works unchanged.

Input: mel images (B, n_mels, T) in [-1, 1], lowest band in the last row (audio/spectrogram.py).
Output: complex spectra (B, 1 + n_fft // 2, T) (`spectrum`) or audio (B, length) (`__call__`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from pix2pitch_jax.audio import inverse, spectrogram

# exp() of the predicted log-magnitude is capped here (Vocos does the same): a full-scale sine's
# STFT peak is n_fft / 4, so this leaves ample headroom at any n_fft of the project.
MAX_LOG_MAGNITUDE = 9.0


@dataclasses.dataclass(frozen=True)
class VocoderConfig:
  """Architecture (`config.vocoder` in a training config)."""

  dim: int = 256
  intermediate_dim: int = 768
  num_layers: int = 8
  kernel_size: int = 7
  # Predict the log-magnitude as a correction of the mel's own linear-magnitude estimate (the
  # filterbank's pseudo-inverse, clipped at 0) rather than from nothing: the network starts with
  # the right spectral envelope and spends its capacity on detail and phase.
  magnitude_prior: bool = True

  @classmethod
  def from_config(cls, vocoder_config: Any) -> VocoderConfig:
    return cls(
      dim=int(vocoder_config.dim),
      intermediate_dim=int(vocoder_config.intermediate_dim),
      num_layers=int(vocoder_config.num_layers),
      kernel_size=int(vocoder_config.kernel_size),
      # Runs from before the option predicted the magnitude from nothing.
      magnitude_prior=bool(vocoder_config.get('magnitude_prior', False)),
    )


class DepthwiseConv(nnx.Module):
  """A depthwise ('SAME', odd kernel) convolution over time written as a sum of shifted,
  per-channel scaled copies: XLA:CPU differentiates grouped convolutions (feature_group_count)
  an order of magnitude slower than these few multiply-adds."""

  def __init__(self, dim: int, kernel_size: int, rngs: nnx.Rngs):
    if kernel_size % 2 != 1:
      raise ValueError(f'kernel_size must be odd, got {kernel_size}')
    bound = 1.0 / kernel_size**0.5  # fan-in of one channel: PyTorch's default uniform init
    self.kernel = nnx.Param(
      jax.random.uniform(rngs.params(), (kernel_size, dim), jnp.float32, -bound, bound)
    )
    self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, C)
    k = self.kernel.shape[0]
    t = x.shape[-2]
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(k // 2, k // 2), (0, 0)])
    kernel = self.kernel[...]
    out = sum(padded[..., i : i + t, :] * kernel[i] for i in range(k))
    return out + self.bias[...]


class ConvNeXtBlock(nnx.Module):
  """Depthwise conv over time, LayerNorm, pointwise MLP (GELU), layer scale, residual."""

  def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, scale: float, rngs):
    self.depthwise = DepthwiseConv(dim, kernel_size, rngs)
    self.norm = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
    self.up = nnx.Linear(dim, intermediate_dim, rngs=rngs)
    self.down = nnx.Linear(intermediate_dim, dim, rngs=rngs)
    self.gamma = nnx.Param(jnp.full((dim,), scale, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    h = self.down(nnx.gelu(self.up(self.norm(self.depthwise(x)))))
    return x + self.gamma[...] * h


class Vocoder(nnx.Module):
  """Mel image frames -> STFT log-magnitude and phase -> inverse STFT."""

  def __init__(self, mel_params: spectrogram.MelParams, config: VocoderConfig, *, rngs: nnx.Rngs):
    self.mel_params = mel_params
    self.n_bins = 1 + mel_params.n_fft // 2
    d = config.dim
    self.embed = nnx.Conv(mel_params.n_mels, d, (config.kernel_size,), padding='SAME', rngs=rngs)
    self.embed_norm = nnx.LayerNorm(d, epsilon=1e-6, rngs=rngs)
    scale = 1.0 / config.num_layers  # small residual branches at first: a stable deep start
    self.blocks = nnx.List(
      [
        ConvNeXtBlock(d, config.intermediate_dim, config.kernel_size, scale, rngs)
        for _ in range(config.num_layers)
      ]
    )
    self.final_norm = nnx.LayerNorm(d, epsilon=1e-6, rngs=rngs)
    self.magnitude_prior = config.magnitude_prior
    # With the prior, a near-zero head starts the output at the prior's magnitude.
    head_init = (
      nnx.initializers.normal(1e-3) if config.magnitude_prior else nnx.initializers.lecun_normal()
    )
    self.head = nnx.Linear(d, 2 * self.n_bins, kernel_init=head_init, rngs=rngs)

  def spectrum(self, mels: jax.Array) -> jax.Array:
    """Mel images (B, n_mels, T) -> complex STFT (B, 1 + n_fft // 2, T)."""
    # (B, T, n_mels), lowest band first: time is the convolution axis, bands the features.
    x = jnp.swapaxes(jnp.flip(jnp.asarray(mels, jnp.float32), axis=-2), -1, -2)
    x = self.embed_norm(self.embed(x))
    for block in self.blocks:
      x = block(x)
    out = self.head(self.final_norm(x))
    log_magnitude, phase = out[..., : self.n_bins], out[..., self.n_bins :]
    if self.magnitude_prior:
      log_magnitude = log_magnitude + self.prior_log_magnitude(mels)
    magnitude = jnp.exp(jnp.minimum(log_magnitude, MAX_LOG_MAGNITUDE))
    # The phase as a point on the unit circle (cos, sin of the output): no wrap-around to learn.
    spec = magnitude * (jnp.cos(phase) + 1j * jnp.sin(phase))
    return jnp.swapaxes(spec, -1, -2)

  def prior_log_magnitude(self, mels: jax.Array) -> jax.Array:
    """log of the linear magnitude the mel implies, (B, T, bins): pseudo-inverse of the
    filterbank on the mel power, clipped at the image's floor (min_db)."""
    p = self.mel_params
    power = spectrogram.image_to_power_mel(jnp.asarray(mels, jnp.float32), p)  # (B, M, T)
    pinv = inverse.filterbank_pseudo_inverse(p)  # (bins, M)
    linear = jnp.einsum('fm,bmt->btf', pinv, power, precision='highest')
    floor = p.ref_power * 10.0 ** (p.min_db / 10.0) / p.n_mels
    return 0.5 * jnp.log(jnp.maximum(linear, floor))

  def __call__(self, mels: jax.Array, length: int | None = None) -> jax.Array:
    """Mel images (B, n_mels, T) -> audio (B, length); default length T * hop (for the
    dataset's full T frames, pass `mel_params.clip_samples`)."""
    spec = self.spectrum(mels)
    length = spec.shape[-1] * self.mel_params.hop_length if length is None else length
    return inverse.istft(spec, self.mel_params, length)


def make_vocoder(
  mel_params: spectrogram.MelParams, config: VocoderConfig, rngs: nnx.Rngs
) -> Vocoder:
  return Vocoder(mel_params, config, rngs=rngs)


def split_params(module: nnx.Module) -> tuple[nnx.GraphDef, dict[str, Any]]:
  """(graphdef, parameters as a pure dict): the layout checkpoints store."""
  graphdef, params = nnx.split(module, nnx.Param)
  return graphdef, params.to_pure_dict()


def abstract_vocoder(
  mel_params: spectrogram.MelParams, config: VocoderConfig
) -> tuple[nnx.GraphDef, dict[str, Any]]:
  """Graph and ShapeDtypeStruct parameters, with no arrays allocated."""
  module = nnx.eval_shape(
    lambda: make_vocoder(mel_params, config, nnx.Rngs(params=jax.random.key(0)))
  )
  return split_params(module)


def apply(graphdef: nnx.GraphDef, params: Any, mels: jax.Array, length: int | None = None):
  """Run the vocoder of `graphdef` with `params` (a pure dict) on mel images."""
  module = nnx.merge(graphdef, params, copy=True)
  return module(mels, length)


def num_params(params: Any) -> int:
  return sum(int(x.size) for x in jax.tree.leaves(params))
