// The parts of ECharts the statistics draw with, registered once: only these are bundled.
import { BarChart, HeatmapChart, LineChart } from 'echarts/charts'
import { GridComponent, LegendComponent, TooltipComponent, VisualMapComponent } from 'echarts/components'
import { use } from 'echarts/core'
import { CanvasRenderer } from 'echarts/renderers'

use([BarChart, HeatmapChart, LineChart, GridComponent, LegendComponent, TooltipComponent, VisualMapComponent, CanvasRenderer])

// Colours with at least 3:1 against white (the chart's background) for lines and bars.
export const BLUE = '#1d5fbf'
export const AMBER = '#a15c00'
export const GREEN = '#2f7d32'
export const RED = '#b42318'
export const HEAT = ['#eef4fc', '#9cc0ee', '#3d7fd6', '#123f80']
