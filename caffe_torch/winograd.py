"""Winograd's minimal filtering F(2x2, 3x3): a forward-only 3 x 3 convolution in 16 gemms.

Each 2 x 2 block of the top is computed from the 4 x 4 tile of the (padded) bottom under it
(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016):

    Y = A' [ (G g G') * (B' d B) ] A            per channel pair, summed over channels

B' d B and G g G' map a tile and a filter into 16 transform positions; at each position the
sum over the bottom's channels is a gemm of (tiles x channels) by (channels x num_output);
A' ... A folds the 16 products back into the 2 x 2 outputs. Per output that is 16/4 = 4
multiplications per channel pair instead of 9: 2.25x fewer flops in the gemms, for six
passes over tile-sized tensors around them. On the CPU that wins where the filters are
large against the image (VGG's 512-channel layers: conv4_2 at 500 x 500 in 56 instead of
84 ms, oneDNN's direct kernel being the reference) and loses on wide, shallow layers (64
channels at 698 x 698: 220 instead of 80 ms); `pays` draws the line measured between.

The sums are float32 as every other convolution of the engine, in another order. B, A and
G hold 0, +-1 and 1/2 only; the transforms are sums of 4 (B' d B) to 9 (G g G', A' m A)
terms, and most of the rounding is the gemms', sums of C terms instead of the direct
form's 9 C. Against a float64 convolution the top's worst error is below that of a float32
sum taken in order (Caffe's gemm on a plain BLAS; here also oneDNN's channels-last kernel,
which it replaces) and near Caffe's own im2col + OpenBLAS gemm (tests/caffe_torch/
test_winograd.py, README). Caffe with cuDNN may run Winograd on a GPU too: cuDNN offers it
for 3 x 3 layers and Caffe takes the algorithm cuDNN prefers. Used only in forward-only
plans (net_memory.py): no backward is defined here. Working memory: the tiles and the
products are 4 bottoms and 4 tops in size, freed when the call returns.
"""
import torch

# A' (2 x 4): the two outputs of a row of four products.
A_T = ((1, 1, 1, 0), (0, 1, -1, -1))
# G (4 x 3): the filter transform, G g G' for a 3 x 3 filter g.
G = ((1, 0, 0), (.5, .5, .5), (.5, -.5, .5), (0, 0, 1))


def pays(channels, num_output):
    """Whether F(2x2, 3x3) beats oneDNN's direct kernel for these channel counts on the
    CPU: the gemms save in proportion to channels x num_output, the transforms cost in
    proportion to channels + num_output. Measured at VGG's shapes (500 x 500, 2 cores,
    AVX-512): 512 -> 512 in 56 against 84 ms, 256 -> 512 in 28 against 41 ms, 256 -> 256
    in 73-82 against 79-80 ms; the line is drawn between the last two."""
    return channels * num_output >= 160 * (channels + num_output)


def filter_transform(weight):
    """(K, C, 3, 3) filters as G g G' at the 16 positions: (16, K, C), one gemm."""
    k, c = weight.shape[:2]
    gg = torch.tensor([[G[a][i] * G[b][j] for i in range(3) for j in range(3)]
                       for a in range(4) for b in range(4)], dtype=weight.dtype,
                      device=weight.device)
    return torch.mm(gg, weight.reshape(k * c, 9).t()).view(16, k, c)


def convolve(x, weight, bias, pad, relu=False):
    """x (1, C, H, W) channels-last, 3 x 3 filters, stride 1, `pad` (h, w): the top
    (1, K, H', W') channels-last, rectified if `relu`."""
    n, c, h, w = x.shape
    if n != 1:
        raise ValueError(f'winograd.convolve takes one image, got a batch of {n}')
    k = weight.shape[0]
    oh, ow = h + 2 * pad[0] - 2, w + 2 * pad[1] - 2
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    d = torch.constant_pad_nd(x[0].permute(1, 2, 0), [
        0, 0, pad[1], 2 * tw + 2 - w - pad[1], pad[0], 2 * th + 2 - h - pad[0]])
    v = _bottom_transform(d, th, tw).view(16, th * tw, c)
    u = filter_transform(weight)
    m = torch.empty(16, th * tw, k, dtype=x.dtype, device=x.device)
    for i in range(16):
        if i == 5 and bias is not None:  # A' e A is all ones for e at (1, 1): the bias
            torch.addmm(bias, v[i], u[i].t(), out=m[i])
        else:
            torch.mm(v[i], u[i].t(), out=m[i])
    y = torch.empty(th, 2, tw, 2, k, dtype=x.dtype, device=x.device)
    products = _top_transform(m.view(4, 4, th, tw, k))
    if relu:
        torch.clamp_min(products, 0, out=y)
    else:
        y.copy_(products)
    y = y.view(2 * th, 2 * tw, k)
    if (oh, ow) != (2 * th, 2 * tw):  # an odd side: the last row or column is padding
        y = y[:oh, :ow].clone()  # a buffer of the top's own size, for the blob to adopt
    return y.unsqueeze(0).permute(0, 3, 1, 2)


def _bottom_transform(d, th, tw):
    """B' d B for every 4 x 4 tile at stride 2 of the padded bottom d (H, W, C): rows
    first, over the whole bottom (tiles overlap by two rows), then columns."""
    rows = torch.empty((4, th) + d.shape[1:], dtype=d.dtype, device=d.device)
    _b_transform(lambda i: d[i:i + 2 * th:2], rows)
    v = torch.empty((4, 4, th, tw, d.shape[2]), dtype=d.dtype, device=d.device)
    _b_transform(lambda i: rows[:, :, i:i + 2 * tw:2], v.transpose(0, 1))
    return v


def _b_transform(at, out):
    """B' applied along one axis: out[0..3] from the tile's elements 0..3 (at(i))."""
    torch.sub(at(0), at(2), out=out[0])
    torch.add(at(1), at(2), out=out[1])
    torch.sub(at(2), at(1), out=out[2])
    torch.sub(at(1), at(3), out=out[3])


def _top_transform(m):
    """A' m A: (4, 4, th, tw, K) products to the 2 x 2 outputs of each tile, one gemm over
    the 16 positions; returned as a (th, 2, tw, 2, K) view, rows and columns interleaved."""
    aa = torch.tensor([[A_T[r][a] * A_T[s][b] for a in range(4) for b in range(4)]
                       for r in range(2) for s in range(2)], dtype=m.dtype, device=m.device)
    _, _, th, tw, k = m.shape
    return torch.mm(aa, m.reshape(16, -1)).view(2, 2, th, tw, k).permute(2, 0, 3, 1, 4)
