// A C++ consumer of the perception node's embeddings, as a planner would read them.
//
// Subscribes to a vljepa_msgs/Embedding topic (default /vljepa_perception/embedding), checks each message the
// way a consumer must (shape against data length, unit norm when `normalized` says so), forgets a camera's
// previous vector when its model_version changes (vectors of different models are not comparable), and prints
// one line per message: its stamp and header, the model, the vector's size and norm, and the cosine to the
// same camera's previous vector. Written against rcl (the C client library under rclcpp) so that it builds
// wherever vljepa_msgs does; an rclcpp subscription receives the same vljepa_msgs::msg::Embedding.
//
//   embedding_listener [--topic T] [--count N] [--timeout S] [--best-effort]
//
// Exit status: 0 after N messages (N 0: until SIGINT/SIGTERM), 1 when --timeout passes first, 2 on a bad
// argument or an rcl failure (one line on stderr).

#include <rcl/error_handling.h>
#include <rcl/rcl.h>
#include <rmw/qos_profiles.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <rosidl_typesupport_cpp/message_type_support.hpp>
#include <vljepa_msgs/msg/embedding.hpp>

namespace
{

std::atomic<bool> g_stop{false};

void on_signal(int) {g_stop = true;}

struct Options
{
  std::string topic = "/vljepa_perception/embedding";
  long count = 0;
  double timeout_s = 0.0;
  bool best_effort = false;
};

// Parses the command line; on a bad argument prints one line and returns false.
bool parse(int argc, char ** argv, Options & options)
{
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    char * end = nullptr;
    if (arg == "--topic" && has_value) {
      options.topic = argv[++i];
    } else if (arg == "--count" && has_value) {
      options.count = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || options.count < 0) {
        std::fprintf(stderr, "embedding_listener: --count must be an integer >= 0, got %s\n", argv[i]);
        return false;
      }
    } else if (arg == "--timeout" && has_value) {
      options.timeout_s = std::strtod(argv[++i], &end);
      if (*end != '\0' || !(options.timeout_s >= 0.0)) {
        std::fprintf(stderr, "embedding_listener: --timeout must be a number >= 0, got %s\n", argv[i]);
        return false;
      }
    } else if (arg == "--best-effort") {
      options.best_effort = true;
    } else if (arg == "--ros-args") {
      break;  // remaps and parameters are rcl's
    } else {
      std::fprintf(stderr, "embedding_listener: unknown argument %s (see the header of embedding_listener.cpp)\n",
        arg.c_str());
      return false;
    }
  }
  return true;
}

// FNV-1a over the vector's bytes: lets a test compare what C++ received with what Python received, bit for bit.
std::uint64_t fnv1a(const std::vector<float> & data)
{
  std::uint64_t hash = 1469598103934665603ULL;
  const auto * bytes = reinterpret_cast<const unsigned char *>(data.data());
  for (std::size_t i = 0; i < data.size() * sizeof(float); ++i) {
    hash = (hash ^ bytes[i]) * 1099511628211ULL;
  }
  return hash;
}

double dot(const std::vector<float> & a, const std::vector<float> & b)
{
  double sum = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sum += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  }
  return sum;
}

// What this consumer remembers per camera: the model that made its last vector, and that vector.
struct CameraState
{
  std::string model_version;
  std::vector<float> previous;
};

class Listener
{
public:
  // Returns a reason when a message cannot be used, or an empty string.
  std::string check(const vljepa_msgs::msg::Embedding & msg) const
  {
    std::uint64_t elements = msg.shape.empty() ? 0 : 1;
    for (auto extent : msg.shape) {
      elements *= extent;
      if (elements > msg.data.size()) {
        break;  // already too many (and a long hostile shape cannot wrap the product around)
      }
    }
    if (msg.data.empty() || elements != msg.data.size()) {
      return "shape";
    }
    for (float value : msg.data) {
      if (!std::isfinite(value)) {
        return "not_finite";
      }
    }
    const double norm = std::sqrt(dot(msg.data, msg.data));
    if (msg.normalized && std::fabs(norm - 1.0) > 1e-3) {
      return "norm";
    }
    return "";
  }

  void handle(const vljepa_msgs::msg::Embedding & msg)
  {
    const std::string reason = check(msg);
    if (!reason.empty()) {
      ++rejected_[reason];
      std::printf("rejected camera=%s stamp=%d.%09u reason=%s\n", msg.camera.c_str(), msg.header.stamp.sec,
        msg.header.stamp.nanosec, reason.c_str());
      std::fflush(stdout);
      return;
    }
    // Vectors of different models (or kinds) are not comparable: one state per camera and kind.
    CameraState & state = cameras_[msg.camera + "/" + std::to_string(msg.kind)];
    if (state.model_version != msg.model_version) {
      if (!state.model_version.empty()) {
        std::printf("model_changed camera=%s from=%s to=%s\n", msg.camera.c_str(), state.model_version.c_str(),
          msg.model_version.c_str());
      }
      state.model_version = msg.model_version;
      state.previous.clear();
    }
    const double norm = std::sqrt(dot(msg.data, msg.data));
    char cosine[32] = "none";
    if (state.previous.size() == msg.data.size() && norm > 0.0) {
      const double previous_norm = std::sqrt(dot(state.previous, state.previous));
      if (previous_norm > 0.0) {
        std::snprintf(cosine, sizeof(cosine), "%.6f", dot(msg.data, state.previous) / (norm * previous_norm));
      }
    }
    std::string shape;
    for (auto extent : msg.shape) {
      shape += (shape.empty() ? "" : "x") + std::to_string(extent);
    }
    std::printf(
      "embedding camera=%s stamp=%d.%09u frame_id=%s kind=%u model_id=%s model_version=%s clip_start=%d.%09u "
      "num_frames=%u shape=%s normalized=%d norm=%.6f first=%.9g fnv1a=%016llx cos_prev=%s query=%s\n",
      msg.camera.c_str(), msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id.c_str(),
      static_cast<unsigned>(msg.kind), msg.model_id.c_str(), msg.model_version.c_str(), msg.clip_start.sec,
      msg.clip_start.nanosec, msg.num_frames, shape.c_str(), msg.normalized ? 1 : 0, norm,
      static_cast<double>(msg.data[0]), static_cast<unsigned long long>(fnv1a(msg.data)), cosine,
      msg.query.c_str());
    std::fflush(stdout);
    state.previous = msg.data;
    ++accepted_;
  }

  long accepted() const {return accepted_;}

  void summary() const
  {
    long rejected = 0;
    for (const auto & entry : rejected_) {
      rejected += entry.second;
    }
    std::printf("summary accepted=%ld rejected=%ld cameras=%zu\n", accepted_, rejected, cameras_.size());
    std::fflush(stdout);
  }

private:
  std::map<std::string, CameraState> cameras_;
  std::map<std::string, long> rejected_;
  long accepted_ = 0;
};

int fail(const char * what)
{
  std::fprintf(stderr, "embedding_listener: %s failed: %s\n", what, rcl_get_error_string().str);
  rcl_reset_error();
  return 2;
}

}  // namespace

int main(int argc, char ** argv)
{
  Options options;
  if (!parse(argc, argv, options)) {
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  rcl_allocator_t allocator = rcl_get_default_allocator();
  rcl_init_options_t init_options = rcl_get_zero_initialized_init_options();
  if (rcl_init_options_init(&init_options, allocator) != RCL_RET_OK) {
    return fail("rcl_init_options_init");
  }
  rcl_context_t context = rcl_get_zero_initialized_context();
  if (rcl_init(argc, argv, &init_options, &context) != RCL_RET_OK) {
    return fail("rcl_init");
  }
  rcl_node_t node = rcl_get_zero_initialized_node();
  rcl_node_options_t node_options = rcl_node_get_default_options();
  if (rcl_node_init(&node, "vljepa_embedding_listener", "", &context, &node_options) != RCL_RET_OK) {
    return fail("rcl_node_init");
  }
  // The perception node's output_qos DEFAULT is reliable and volatile; a best-effort writer needs --best-effort.
  rcl_subscription_options_t subscription_options = rcl_subscription_get_default_options();
  subscription_options.qos = rmw_qos_profile_default;
  subscription_options.qos.depth = 50;
  if (options.best_effort) {
    subscription_options.qos.reliability = RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT;
  }
  const rosidl_message_type_support_t * type_support =
    rosidl_typesupport_cpp::get_message_type_support_handle<vljepa_msgs::msg::Embedding>();
  rcl_subscription_t subscription = rcl_get_zero_initialized_subscription();
  if (rcl_subscription_init(&subscription, &node, type_support, options.topic.c_str(), &subscription_options) !=
    RCL_RET_OK)
  {
    return fail("rcl_subscription_init");
  }
  rcl_wait_set_t wait_set = rcl_get_zero_initialized_wait_set();
  if (rcl_wait_set_init(&wait_set, 1, 0, 0, 0, 0, 0, &context, allocator) != RCL_RET_OK) {
    return fail("rcl_wait_set_init");
  }
  std::printf("listening topic=%s reliability=%s\n", rcl_subscription_get_topic_name(&subscription),
    options.best_effort ? "best_effort" : "reliable");
  std::fflush(stdout);

  Listener listener;
  rcl_ret_t status = RCL_RET_OK;
  const auto started = std::chrono::steady_clock::now();
  int exit_code = 0;
  while (!g_stop && (options.count == 0 || listener.accepted() < options.count)) {
    const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - started;
    if (options.timeout_s > 0.0 && waited.count() >= options.timeout_s) {
      std::fprintf(stderr, "embedding_listener: %ld of %ld embeddings after %.1f s on %s\n", listener.accepted(),
        options.count, options.timeout_s, options.topic.c_str());
      exit_code = 1;
      break;
    }
    if (rcl_wait_set_clear(&wait_set) != RCL_RET_OK ||
      rcl_wait_set_add_subscription(&wait_set, &subscription, nullptr) != RCL_RET_OK)
    {
      exit_code = fail("rcl_wait_set_add_subscription");
      break;
    }
    status = rcl_wait(&wait_set, RCL_MS_TO_NS(100));  // wake up to notice a signal or the timeout
    if (status == RCL_RET_TIMEOUT) {
      continue;
    }
    if (status != RCL_RET_OK) {
      exit_code = fail("rcl_wait");
      break;
    }
    // Drain everything that arrived: the wait only says that at least one message is there.
    while (true) {
      vljepa_msgs::msg::Embedding msg;
      rmw_message_info_t info = rmw_get_zero_initialized_message_info();
      status = rcl_take(&subscription, &msg, &info, nullptr);
      if (status == RCL_RET_SUBSCRIPTION_TAKE_FAILED) {
        break;
      }
      if (status != RCL_RET_OK) {
        exit_code = fail("rcl_take");
        break;
      }
      listener.handle(msg);
    }
    if (exit_code != 0) {
      break;
    }
  }
  listener.summary();
  // Tear down in reverse order; a failure here changes nothing the run printed, so it is only reported.
  const bool clean = rcl_wait_set_fini(&wait_set) == RCL_RET_OK &&
    rcl_subscription_fini(&subscription, &node) == RCL_RET_OK && rcl_node_fini(&node) == RCL_RET_OK &&
    rcl_shutdown(&context) == RCL_RET_OK && rcl_context_fini(&context) == RCL_RET_OK &&
    rcl_init_options_fini(&init_options) == RCL_RET_OK;
  if (!clean) {
    std::fprintf(stderr, "embedding_listener: shutdown: %s\n", rcl_get_error_string().str);
    rcl_reset_error();
  }
  return exit_code;
}
