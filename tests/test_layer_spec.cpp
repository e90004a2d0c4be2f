#include "snn/network/layer_spec.h"

#include "snn/error.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using snn::LayerKind;
using snn::LayerSpec;
using snn::Shape;

namespace {

std::string error_of(const Shape& input, const std::vector<LayerSpec>& layers) {
  try {
    snn::infer_shapes(input, layers);
  } catch (const snn::Error& e) { return e.what(); }
  return "(no error)";
}

}  // namespace

TEST_CASE("layer_spec: the paper's ConvNet has the shapes worked out by hand", "[layer_spec]") {
  // 28x28 -> conv 12 5x5: 24x24 -> pool 2: 12x12 -> conv 64 5x5: 8x8 -> pool 2: 4x4 -> 1024 -> 10.
  const std::vector<LayerSpec> layers{LayerSpec::conv(12, 5), LayerSpec::avgpool(2), LayerSpec::conv(64, 5),
                                      LayerSpec::avgpool(2),  LayerSpec::flatten(),  LayerSpec::dense(10)};
  const auto shapes = snn::infer_shapes(Shape{1, 28, 28}, layers);
  REQUIRE(shapes.size() == 6);
  CHECK(shapes[0] == Shape{12, 24, 24});
  CHECK(shapes[1] == Shape{12, 12, 12});
  CHECK(shapes[2] == Shape{64, 8, 8});
  CHECK(shapes[3] == Shape{64, 4, 4});
  CHECK(shapes[4] == Shape{1024, 1, 1});
  CHECK(shapes[5] == Shape{10, 1, 1});
  CHECK(snn::weight_shape(layers[2], shapes[1]) == std::vector<std::size_t>{64, 12, 5, 5});
  CHECK(snn::weight_shape(layers[5], shapes[4]) == std::vector<std::size_t>{10, 1024});
  CHECK(snn::weight_shape(layers[1], shapes[0]).empty());
  CHECK(snn::to_string(shapes[2]) == "64x8x8");
  CHECK(snn::to_string(shapes[4]) == "1024");
}

TEST_CASE("layer_spec: stride and padding follow (in + 2 pad - k) / s + 1", "[layer_spec]") {
  // 28 + 2 - 3 = 27, / 3 + 1 = 10; 10 + 0 - 2 = 8, / 2 + 1 = 5.
  const auto shapes = snn::infer_shapes(Shape{3, 28, 28}, std::vector{LayerSpec::conv(8, 3, 3, 1), LayerSpec::conv(4, 2, 2)});
  CHECK(shapes[0] == Shape{8, 10, 10});
  CHECK(shapes[1] == Shape{4, 5, 5});
  // A dense layer reads any shape flat; a 1x1 "convolution" of a flat vector is allowed.
  CHECK(snn::output_shape(LayerSpec::dense(7), Shape{4, 5, 5}, 1) == Shape{7, 1, 1});
}

TEST_CASE("layer_spec: describe reads like the config", "[layer_spec]") {
  CHECK(snn::describe(LayerSpec::conv(64, 5)) == "conv 64 5x5");
  CHECK(snn::describe(LayerSpec::conv(32, 3, 2, 1)) == "conv 32 3x3 stride 2 pad 1");
  CHECK(snn::describe(LayerSpec::avgpool(2)) == "avgpool 2");
  CHECK(snn::describe(LayerSpec::dense(10)) == "dense 10");
  CHECK(snn::describe(LayerSpec::flatten()) == "flatten");
  LayerSpec pool = LayerSpec::avgpool(3);
  pool.stride_h = pool.stride_w = 2;
  CHECK(snn::describe(pool) == "avgpool 3x3 stride 2");
  CHECK(snn::parse_layer_kind("avgpool") == LayerKind::AvgPool);
  CHECK_THROWS_WITH(snn::parse_layer_kind("maxpool"), Catch::Contains("'maxpool'") && Catch::Contains("avgpool"));
}

TEST_CASE("layer_spec: bad shapes name the layer and the sizes", "[layer_spec]") {
  // The example: the second conv sees a 4x4 map.
  CHECK(error_of(Shape{1, 16, 16}, {LayerSpec::conv(12, 5), LayerSpec::avgpool(3), LayerSpec::conv(64, 5)}) ==
        "layer 3 'conv 64 5x5' needs at least 5x5 input, gets 4x4");
  CHECK_THAT(error_of(Shape{1, 28, 28}, {LayerSpec::conv(12, 5), LayerSpec::avgpool(5)}),
             Catch::Contains("layer 2 'avgpool 5'") && Catch::Contains("24x24") && Catch::Contains("stride 5"));
  CHECK_THAT(error_of(Shape{1, 28, 28}, {LayerSpec::conv(0, 5)}), Catch::Contains("layer 1") && Catch::Contains("channel"));
  CHECK_THAT(error_of(Shape{1, 28, 28}, {LayerSpec::conv(4, 0)}), Catch::Contains("kernel size must be at least 1"));
  CHECK_THAT(error_of(Shape{784, 1, 1}, {LayerSpec::dense(100), LayerSpec::conv(4, 3)}),
             Catch::Contains("layer 2 'conv 4 3x3' needs a channels x height x width input"));
  CHECK_THAT(error_of(Shape{1, 28, 28}, {LayerSpec::dense(0)}), Catch::Contains("at least 1 neuron"));
  CHECK_THAT(error_of(Shape{0, 28, 28}, {LayerSpec::dense(3)}), Catch::Contains("zero size"));
  CHECK_THAT(error_of(Shape{1, 28, 28}, {}), Catch::Contains("no layers"));
  LayerSpec padded_pool = LayerSpec::avgpool(2);
  padded_pool.pad_h = 1;
  CHECK_THAT(error_of(Shape{1, 28, 28}, {padded_pool}), Catch::Contains("no padding"));
}
