// Tensor, Parameter, Graph (tape + arena), NoGradGuard and backward().
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lowbit/autograd/arena.hpp"
#include "lowbit/autograd/shape.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit::autograd {

/// Storage behind a tensor handle: a dense row-major buffer and, once backward()
/// reaches it, a gradient buffer of the same shape. Graph-made tensors live in the
/// graph's arena; parameters own theirs.
template <class S>
struct TensorImpl {
  Shape shape;
  S* data = nullptr;
  S* grad = nullptr;
  bool requires_grad = false;
};

/// A cheap handle (one pointer) to a tensor. Valid until its graph is cleared
/// (graph-made tensors) or its Parameter is destroyed.
template <class S>
class BasicTensor {
 public:
  using scalar_type = S;
  BasicTensor() = default;
  explicit BasicTensor(TensorImpl<S>* impl) : impl_(impl) {}

  [[nodiscard]] bool defined() const { return impl_ != nullptr; }
  [[nodiscard]] const Shape& shape() const { return checked()->shape; }
  [[nodiscard]] Index dim(int i) const { return shape()[i]; }
  [[nodiscard]] int ndim() const { return shape().ndim; }
  [[nodiscard]] Index numel() const { return shape().numel(); }
  [[nodiscard]] S* data() const { return checked()->data; }
  /// Null until backward() has reached this tensor (or for tensors that need no gradient).
  [[nodiscard]] S* grad() const { return checked()->grad; }
  [[nodiscard]] bool requires_grad() const { return checked()->requires_grad; }
  [[nodiscard]] std::span<S> values() const { return {data(), static_cast<std::size_t>(numel())}; }
  [[nodiscard]] std::span<S> grads() const {
    return {grad(), grad() ? static_cast<std::size_t>(numel()) : std::size_t{0}};
  }
  /// The value of a one-element tensor (e.g. a loss).
  [[nodiscard]] S item() const {
    lowbit::detail::check(numel() == 1, "Tensor::item: tensor of shape ", shape(), " is not a scalar");
    return data()[0];
  }
  [[nodiscard]] TensorImpl<S>* impl() const { return impl_; }

 protected:
  void rebind(TensorImpl<S>* impl) { impl_ = impl; }

 private:
  TensorImpl<S>* checked() const {
    lowbit::detail::check(impl_ != nullptr, "Tensor: use of an undefined (default-constructed) tensor");
    return impl_;
  }
  TensorImpl<S>* impl_ = nullptr;
};

/// A trainable (or frozen) weight: owns its values and its gradient, which
/// backward() accumulates into (zero_grad() clears it, as in PyTorch). It is a
/// tensor itself, so it can be passed to any op.
template <class S>
class BasicParameter : public BasicTensor<S> {
 public:
  BasicParameter(std::string name, Shape shape, std::vector<S> values = {})
      : name_(std::move(name)), impl_(std::make_unique<TensorImpl<S>>()) {
    const auto n = static_cast<std::size_t>(shape.numel());
    lowbit::detail::check(values.empty() || values.size() == n, "Parameter '", name_, "': ", values.size(),
                          " values for shape ", shape, " (", n, " elements)");
    data_ = values.empty() ? std::vector<S>(n, S(0)) : std::move(values);
    grad_.assign(n, S(0));
    impl_->shape = shape;
    impl_->data = data_.data();
    this->rebind(impl_.get());
    set_trainable(true);
  }
  /// A parameter with a shape and no storage yet: a streaming model's tensors stay in
  /// their files until load(). Frozen; unusable (loaded() false) until loaded.
  struct Unloaded {};
  BasicParameter(std::string name, Shape shape, Unloaded)
      : name_(std::move(name)), impl_(std::make_unique<TensorImpl<S>>()) {
    impl_->shape = shape;
    impl_->data = nullptr;
    impl_->grad = nullptr;
    impl_->requires_grad = false;
    this->rebind(impl_.get());
  }
  BasicParameter(BasicParameter&& other) noexcept
      : BasicTensor<S>(other.impl_.get()), name_(std::move(other.name_)), data_(std::move(other.data_)),
        grad_(std::move(other.grad_)), impl_(std::move(other.impl_)) {}
  BasicParameter& operator=(BasicParameter&&) = delete;
  BasicParameter(const BasicParameter&) = delete;
  BasicParameter& operator=(const BasicParameter&) = delete;

  [[nodiscard]] BasicTensor<S> tensor() const { return BasicTensor<S>(impl_.get()); }

  [[nodiscard]] const std::string& name() const { return name_; }
  /// The gradient buffer (all zeros for a frozen parameter).
  [[nodiscard]] S* grad() const { return const_cast<S*>(grad_.data()); }
  [[nodiscard]] std::span<S> grads() const { return {grad(), grad_.size()}; }

  /// Frozen parameters take part in the forward pass but get no gradient.
  void set_trainable(bool t) {
    lowbit::detail::check(!t || loaded(), "Parameter '", name_, "': not loaded, so it cannot be trained");
    if (t && grad_.size() != data_.size()) grad_.assign(data_.size(), S(0));
    impl_->requires_grad = t;
    impl_->grad = t ? grad_.data() : nullptr;
  }

  /// Whether the values are in memory (false for an Unloaded or unload()ed parameter).
  [[nodiscard]] bool loaded() const { return impl_->data != nullptr || impl_->shape.numel() == 0; }
  /// Takes `values` as the storage, frozen and without a gradient buffer (a
  /// streaming model widens a block's tensors this way only while it works on it).
  void load(std::vector<S> values) {
    lowbit::detail::check(values.size() == static_cast<std::size_t>(impl_->shape.numel()), "Parameter '", name_,
                          "': ", values.size(), " values for shape ", impl_->shape);
    data_ = std::move(values);
    std::vector<S>().swap(grad_);
    impl_->data = data_.data();
    impl_->grad = nullptr;
    impl_->requires_grad = false;
  }
  /// Frees the values and the gradient buffer (`v = {}` would keep the capacity).
  void unload() {
    std::vector<S>().swap(data_);
    std::vector<S>().swap(grad_);
    impl_->data = nullptr;
    impl_->grad = nullptr;
    impl_->requires_grad = false;
  }
  [[nodiscard]] bool trainable() const { return impl_->requires_grad; }
  void zero_grad() { std::fill(grad_.begin(), grad_.end(), S(0)); }

  /// Row-major matrix view: rows = product of the leading dimensions, cols = last.
  [[nodiscard]] BasicMatrixView<S> matrix() const {
    return {impl_->data, impl_->shape.rows(), impl_->shape.last()};
  }

 private:
  std::string name_;
  std::vector<S> data_, grad_;
  std::unique_ptr<TensorImpl<S>> impl_;  // stable address: handles survive moves
};

namespace detail {

/// A void() callable stored in place (no heap): backward closures capture only
/// pointers and numbers, so the tape never allocates once its vector is warm.
class BackwardFn {
 public:
  static constexpr std::size_t capacity = 160;
  BackwardFn() = default;
  template <class F>
  explicit BackwardFn(F f) {
    static_assert(sizeof(F) <= capacity, "backward closure too large: capture less");
    static_assert(std::is_trivially_copyable_v<F> && std::is_trivially_destructible_v<F>,
                  "backward closures capture pointers and numbers only");
    ::new (static_cast<void*>(storage_)) F(f);
    call_ = [](const void* p) { (*static_cast<const F*>(p))(); };
  }
  void operator()() const { call_(storage_); }

 private:
  alignas(16) unsigned char storage_[capacity]{};
  void (*call_)(const void*) = nullptr;
};

inline bool& grad_mode() {
  static thread_local bool enabled = true;
  return enabled;
}

}  // namespace detail

/// While alive, ops record nothing and make no gradient buffers (evaluation).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(detail::grad_mode()) { detail::grad_mode() = false; }
  ~NoGradGuard() { detail::grad_mode() = previous_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

[[nodiscard]] inline bool grad_enabled() { return detail::grad_mode(); }

/// The tape and the arena of one forward/backward pass. Constructing a graph makes it
/// the current one on this thread (ops take their memory from it) until it is
/// destroyed. clear() forgets the tape and all graph-made tensors but keeps the
/// memory, so a training loop re-running the same step allocates nothing after the
/// first step.
template <class S>
class BasicGraph {
 public:
  explicit BasicGraph(std::size_t initial_bytes = std::size_t{1} << 20)
      : arena_(initial_bytes), previous_(current_slot()) {
    current_slot() = this;
  }
  ~BasicGraph() { current_slot() = previous_; }
  BasicGraph(const BasicGraph&) = delete;
  BasicGraph& operator=(const BasicGraph&) = delete;

  /// The innermost live graph on this thread; throws if there is none.
  static BasicGraph& current(const char* op) {
    BasicGraph* g = current_slot();
    lowbit::detail::check(g != nullptr, op, ": no autograd Graph is alive on this thread (create one "
                          "before running ops)");
    return *g;
  }

  void clear() {
    nodes_.clear();
    impls_used_ = 0;
    arena_.reset();
    backward_done_ = false;
  }

  /// A new uninitialised tensor of `shape` in the arena.
  TensorImpl<S>* make(const Shape& shape) {
    TensorImpl<S>* t = next_impl();
    *t = TensorImpl<S>{shape, arena_.alloc<S>(static_cast<std::size_t>(shape.numel())), nullptr, false};
    return t;
  }
  TensorImpl<S>* make_zeros(const Shape& shape) {
    TensorImpl<S>* t = make(shape);
    std::fill_n(t->data, shape.numel(), S(0));
    return t;
  }
  /// Tensor holding a copy of `values` (no gradient).
  BasicTensor<S> constant(const Shape& shape, std::span<const S> values) {
    lowbit::detail::check(static_cast<Index>(values.size()) == shape.numel(), "constant: ", values.size(),
                          " values for shape ", shape);
    TensorImpl<S>* t = make(shape);
    std::copy(values.begin(), values.end(), t->data);
    return BasicTensor<S>(t);
  }
  /// Tensor over the caller's `values`, not copied (no gradient): for inputs too big
  /// to copy every step. They must stay alive and unchanged while the graph uses the
  /// tensor; ops never write their inputs.
  BasicTensor<S> view(const Shape& shape, std::span<const S> values) {
    lowbit::detail::check(static_cast<Index>(values.size()) == shape.numel(), "view: ", values.size(),
                          " values for shape ", shape);
    TensorImpl<S>* t = next_impl();
    *t = TensorImpl<S>{shape, const_cast<S*>(values.data()), nullptr, false};
    return BasicTensor<S>(t);
  }
  /// Tensor holding a copy of `values` that backward() gives a gradient (an input to check).
  BasicTensor<S> variable(const Shape& shape, std::span<const S> values) {
    BasicTensor<S> t = constant(shape, values);
    t.impl()->requires_grad = true;
    return t;
  }

  Arena& arena() { return arena_; }

  /// True when an op with these inputs must record a backward step.
  [[nodiscard]] static bool tracks(std::initializer_list<const TensorImpl<S>*> inputs) {
    if (!grad_enabled()) return false;
    for (const auto* t : inputs)
      if (t && t->requires_grad) return true;
    return false;
  }

  /// Records out's backward step. Before `fn` runs, every input that requires a
  /// gradient has a (zeroed or accumulating) gradient buffer, and out->grad is set.
  template <class F>
  void record(TensorImpl<S>* out, std::initializer_list<TensorImpl<S>*> inputs, F fn) {
    lowbit::detail::check(inputs.size() <= 4, "Graph::record: at most 4 inputs");
    out->requires_grad = true;
    Node n;
    n.out = out;
    std::copy(inputs.begin(), inputs.end(), n.inputs.begin());
    n.fn = detail::BackwardFn(fn);
    nodes_.push_back(n);
  }

  /// Reverse pass from a one-element loss: d loss / d loss = 1.
  void backward(BasicTensor<S> loss) {
    lowbit::detail::check(loss.numel() == 1, "backward: the loss must have one element, its shape is ",
                          loss.shape());
    lowbit::detail::check(loss.requires_grad(), "backward: the loss does not depend on any tensor that "
                          "requires a gradient (trainable parameter or variable; or it was computed under "
                          "NoGradGuard)");
    lowbit::detail::check(!backward_done_, "backward: this graph was already back-propagated; clear() it "
                          "and run the forward pass again");
    backward_done_ = true;
    ensure_grad(loss.impl());
    loss.impl()->grad[0] += S(1);
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
      if (it->out->grad == nullptr) continue;  // nothing flowed back to this op
      for (TensorImpl<S>* in : it->inputs)
        if (in && in->requires_grad) ensure_grad(in);
      it->fn();
    }
  }

  [[nodiscard]] std::size_t peak_bytes() const { return arena_.peak_bytes(); }
  [[nodiscard]] std::size_t bytes_in_use() const { return arena_.in_use(); }
  [[nodiscard]] std::size_t tape_size() const { return nodes_.size(); }

 private:
  struct Node {
    TensorImpl<S>* out = nullptr;
    std::array<TensorImpl<S>*, 4> inputs{};
    detail::BackwardFn fn;
  };

  /// A tensor slot: reused after clear(); a deque, so slots never move.
  TensorImpl<S>* next_impl() {
    TensorImpl<S>* t = impls_used_ < impls_.size() ? &impls_[impls_used_] : &impls_.emplace_back();
    ++impls_used_;
    return t;
  }

  void ensure_grad(TensorImpl<S>* t) {
    if (t->grad == nullptr) t->grad = arena_.zeros<S>(static_cast<std::size_t>(t->shape.numel()));
  }

  static BasicGraph*& current_slot() {
    static thread_local BasicGraph* g = nullptr;
    return g;
  }

  Arena arena_;
  std::vector<Node> nodes_;
  std::deque<TensorImpl<S>> impls_;
  std::size_t impls_used_ = 0;
  bool backward_done_ = false;
  BasicGraph* previous_;
};

/// backward() on the graph that is current on this thread.
template <class S>
void backward(BasicTensor<S> loss) {
  BasicGraph<S>::current("backward").backward(loss);
}

using Tensor = BasicTensor<float>;
using Parameter = BasicParameter<float>;
using Graph = BasicGraph<float>;

}  // namespace lowbit::autograd
