import { createApp } from 'vue'
import ElementPlus from 'element-plus'
import 'element-plus/dist/index.css'
import './styles.css'
import App from './App.vue'
import { i18n } from './i18n'
import { router } from './router'
import { applyPrefs } from './lib/prefs'

applyPrefs((l) => {
  i18n.global.locale.value = l as 'zh-CN' | 'en'
  document.title = i18n.global.t('app.title')
})

createApp(App).use(i18n).use(router).use(ElementPlus).mount('#app')
